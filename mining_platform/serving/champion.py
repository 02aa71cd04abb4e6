"""Loading a project's champion from the MLflow registry into a servable, smoke-tested model.

A `ServedModel` is immutable: the endpoint swaps whole objects, so a request that
picked one up finishes on it whatever a reload does meanwhile.
"""

import datetime as dt
import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import xgboost as xgb
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from mining_platform.training.registry import CHAMPION, alias_version

# MLflow column types a request value may be sent as: JSON numbers, or booleans for a boolean column.
NUMERIC_TYPES = {"double", "float", "long", "integer"}
BOOLEAN_TYPES = {"boolean"}


class NoChampion(LookupError):
    """The registered model has no champion alias (or is not registered yet)."""


class ChampionLoadFailed(RuntimeError):
    """The champion exists but cannot be served; the message says why."""


class RegistryUnavailable(RuntimeError):
    """MLflow could not be asked (down, unreachable, or answering errors)."""


@dataclass(frozen=True)
class ServedModel:
    name: str
    version: str
    run_id: str
    booster: xgb.Booster = field(repr=False)
    features: tuple[str, ...]
    boolean_features: frozenset[str]
    # Feature set name -> {"version", "hash"} the version was trained on (its mining.features tag).
    trained_features: dict[str, dict]
    loaded_at: dt.datetime
    alias: str = CHAMPION

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"

    def predict(self, X: np.ndarray) -> np.ndarray:
        # inplace_predict skips the DMatrix and is thread-safe; X columns are in signature order.
        return self.booster.inplace_predict(X, validate_features=False)

    def describe(self) -> dict:
        return {
            "name": self.name,
            "version": self.version,
            "alias": self.alias,
            "run_id": self.run_id,
            "model_uri": self.uri,
            "loaded_at": self.loaded_at.isoformat(),
            "features": list(self.features),
        }


def _signature_columns(mlmodel, where: str) -> tuple[tuple[str, ...], frozenset[str]]:
    signature = mlmodel.signature
    if signature is None:
        raise ChampionLoadFailed(f"{where} has no signature, so its feature order is unknown")
    if not signature.inputs.has_input_names():
        raise ChampionLoadFailed(f"{where}: its signature has no column names (a tensor signature)")
    columns = signature.inputs.to_dict()
    unsupported = [f"{c['name']} ({c['type']})" for c in columns if c["type"] not in NUMERIC_TYPES | BOOLEAN_TYPES]
    if unsupported:
        raise ChampionLoadFailed(f"{where}: non-numeric input columns cannot be served: {', '.join(unsupported)}")
    names = tuple(c["name"] for c in columns)
    return names, frozenset(c["name"] for c in columns if c["type"] in BOOLEAN_TYPES)


def _smoke_rows(mlmodel, local: Path, features: tuple[str, ...]) -> np.ndarray:
    """The logged input example in signature order, else one row of missing values."""
    example = mlmodel.load_input_example(str(local)) if mlmodel.saved_input_example_info else None
    if example is not None and hasattr(example, "columns") and set(features) <= set(example.columns):
        return example[list(features)].to_numpy(dtype=np.float64)
    return np.full((1, len(features)), np.nan)


def _smoke_test(model: ServedModel, rows: np.ndarray) -> None:
    try:
        scores = model.predict(rows)
    except xgb.core.XGBoostError as exc:
        raise ChampionLoadFailed(f"{model.uri} failed its smoke prediction: {exc}") from None
    if scores.shape != (rows.shape[0],) or not np.all(np.isfinite(scores)) or np.any((scores < 0) | (scores > 1)):
        raise ChampionLoadFailed(
            f"{model.uri} failed its smoke prediction: expected {rows.shape[0]} probabilities in [0, 1], "
            f"got shape {scores.shape} {scores[:5].tolist()}"
        )


def load_version(tracking_uri: str, model_name: str, version: str) -> ServedModel:
    """Download, load and smoke-test one registered version; raises ChampionLoadFailed saying why."""
    # Imported here: mlflow's model machinery is heavy and only needed on a load.
    import mlflow.xgboost
    from mlflow.artifacts import download_artifacts
    from mlflow.models import Model

    uri = f"models:/{model_name}/{version}"
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    try:
        details = client.get_model_version(model_name, version)
    except MlflowException as exc:
        raise RegistryUnavailable(f"cannot read {uri} from the registry: {exc.message}") from None
    with tempfile.TemporaryDirectory() as scratch:
        try:
            # The version's own artifact location: resolving "models:/" again would consult
            # MLflow's process-wide registry URI, not this endpoint's.
            source = client.get_model_version_download_uri(model_name, version)
            local = Path(download_artifacts(artifact_uri=source, dst_path=scratch, tracking_uri=tracking_uri))
            mlmodel = Model.load(str(local / "MLmodel"))
        except (MlflowException, OSError) as exc:
            raise ChampionLoadFailed(f"cannot download {uri}: {exc}") from None
        if "xgboost" not in mlmodel.flavors:
            raise ChampionLoadFailed(f"{uri} is not an XGBoost model (flavors: {sorted(mlmodel.flavors)})")
        features, boolean_features = _signature_columns(mlmodel, uri)
        try:
            booster = mlflow.xgboost.load_model(str(local))
        except Exception as exc:  # noqa: BLE001 - any failure to deserialise means "cannot serve"
            raise ChampionLoadFailed(f"cannot load the XGBoost model of {uri}: {type(exc).__name__}: {exc}") from None
        if not isinstance(booster, xgb.Booster):
            booster = booster.get_booster()  # logged through the scikit-learn API
        # One thread: requests are small and scored one at a time on the event loop, where
        # OpenMP's thread team costs more than it saves (measured in bench/serving.py).
        booster.set_param({"nthread": 1})
        if booster.num_features() != len(features):
            raise ChampionLoadFailed(
                f"{uri}: the booster expects {booster.num_features()} features but its signature lists {len(features)}"
            )
        try:
            smoke_rows = _smoke_rows(mlmodel, local, features)
        except Exception as exc:  # noqa: BLE001 - a logged example that cannot be read fails the load
            raise ChampionLoadFailed(f"{uri}: its input example cannot be read: {type(exc).__name__}: {exc}") from None
    try:
        trained_features = json.loads(details.tags.get("mining.features", "{}"))
    except json.JSONDecodeError:
        trained_features = None
    if not isinstance(trained_features, dict):
        raise ChampionLoadFailed(f"{uri}: its mining.features tag is not a JSON object of feature sets")
    model = ServedModel(
        name=model_name, version=str(version), run_id=details.run_id, booster=booster, features=features,
        boolean_features=boolean_features, trained_features=trained_features,
        loaded_at=dt.datetime.now(dt.timezone.utc),
    )
    _smoke_test(model, smoke_rows)
    return model


def champion_version(tracking_uri: str, model_name: str) -> str:
    """The version the champion alias points at; NoChampion when there is none."""
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    try:
        version = alias_version(client, model_name, CHAMPION)
    except MlflowException as exc:
        raise RegistryUnavailable(f"cannot read {model_name}@{CHAMPION} from the registry: {exc.message}") from None
    except OSError as exc:
        raise RegistryUnavailable(f"cannot reach the MLflow registry: {exc}") from None
    if version is None:
        raise NoChampion(f"registered model {model_name!r} has no {CHAMPION!r} alias yet")
    return version
