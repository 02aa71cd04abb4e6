"""Loading a registered version: its XGBoost booster, its column signature and its input example.

The endpoint (hot reload) and the gate (scoring the champion on new validation rows)
load versions through here, so both read exactly what was registered.
"""

import tempfile
from dataclasses import dataclass
from pathlib import Path

import mlflow.xgboost
import numpy as np
import xgboost as xgb
from mlflow.artifacts import download_artifacts
from mlflow.exceptions import MlflowException
from mlflow.models import Model

from mining_platform.registry.client import client


class RegistryUnavailable(RuntimeError):
    """MLflow could not be asked (down, unreachable, or answering errors)."""


class VersionUnusable(RuntimeError):
    """The version exists but is not an XGBoost model with a column signature; the message says why."""


@dataclass(frozen=True)
class LoadedVersion:
    name: str
    version: str
    run_id: str
    tags: dict[str, str]
    booster: xgb.Booster
    columns: tuple[tuple[str, str], ...]  # (name, MLflow column type) in signature order
    example: np.ndarray | None  # the logged input example in signature order, when it has every column

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"

    @property
    def features(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.columns)


def _columns(mlmodel: Model, uri: str) -> tuple[tuple[str, str], ...]:
    signature = mlmodel.signature
    if signature is None:
        raise VersionUnusable(f"{uri} has no signature, so its feature order is unknown")
    if not signature.inputs.has_input_names():
        raise VersionUnusable(f"{uri}: its signature has no column names (a tensor signature)")
    return tuple((column["name"], column["type"]) for column in signature.inputs.to_dict())


def _example(mlmodel: Model, local: Path, features: tuple[str, ...], uri: str) -> np.ndarray | None:
    try:
        example = mlmodel.load_input_example(str(local)) if mlmodel.saved_input_example_info else None
    except Exception as exc:  # noqa: BLE001 - a logged example that cannot be read makes the version unusable
        raise VersionUnusable(f"{uri}: its input example cannot be read: {type(exc).__name__}: {exc}") from None
    if example is not None and hasattr(example, "columns") and set(features) <= set(example.columns):
        return example[list(features)].to_numpy(dtype=np.float64)
    return None


def load_version(tracking_uri: str, model_name: str, version: str) -> LoadedVersion:
    """Download and load one registered version; RegistryUnavailable or VersionUnusable saying why not."""
    uri = f"models:/{model_name}/{version}"
    mlflow_client = client(tracking_uri)
    try:
        details = mlflow_client.get_model_version(model_name, version)
    except MlflowException as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            # The registry answered: there is no such version (or model). Not an outage: it will not load later.
            raise VersionUnusable(f"version {version!r} of {model_name} does not exist in the registry "
                                  f"({exc.message})") from None
        raise RegistryUnavailable(f"cannot read {uri} from the registry: {exc.message}") from None
    except OSError as exc:
        raise RegistryUnavailable(f"cannot reach the MLflow registry: {exc}") from None
    with tempfile.TemporaryDirectory() as scratch:
        try:
            # The version's own artifact location: resolving "models:/" again would consult
            # MLflow's process-wide registry URI, not this tracking URI.
            source = mlflow_client.get_model_version_download_uri(model_name, version)
            local = Path(download_artifacts(artifact_uri=source, dst_path=scratch, tracking_uri=tracking_uri))
            mlmodel = Model.load(str(local / "MLmodel"))
        except (MlflowException, OSError) as exc:
            raise VersionUnusable(f"cannot download {uri}: {exc}") from None
        if "xgboost" not in mlmodel.flavors:
            raise VersionUnusable(f"{uri} is not an XGBoost model (flavors: {sorted(mlmodel.flavors)})")
        columns = _columns(mlmodel, uri)
        try:
            booster = mlflow.xgboost.load_model(str(local))
        except Exception as exc:  # noqa: BLE001 - any failure to deserialise means "cannot use"
            raise VersionUnusable(f"cannot load the XGBoost model of {uri}: {type(exc).__name__}: {exc}") from None
        if not isinstance(booster, xgb.Booster):
            booster = booster.get_booster()  # logged through the scikit-learn API
        example = _example(mlmodel, local, tuple(name for name, _ in columns), uri)
    return LoadedVersion(name=model_name, version=str(version), run_id=details.run_id, tags=dict(details.tags),
                         booster=booster, columns=columns, example=example)
