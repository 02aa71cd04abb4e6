"""A registered version as the endpoint serves it (champion or challenger): loaded from the registry, checked
(its gate passed, its signature is servable), smoke-tested, immutable.

A `ServedModel` is immutable: the endpoint swaps whole objects, so a request that
picked one up finishes on it whatever a reload does meanwhile. Batch scoring
(`<p>/predictions`) loads versions through `load_version` too, so both score alike.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from mining_platform.spec.names import CHAMPION
from mining_platform.spec.tags import FEATURES_TAG, GATE_TAG, PASSED, TASK_PARAMETERS_TAG, TASK_TAG
from mining_platform.tasks import BINARY, Task, UnknownTask, task_named

if TYPE_CHECKING:
    import xgboost as xgb

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
    task: Task = BINARY  # what its scores are: probabilities, predicted values

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
            **self.task.describe(),
            "run_id": self.run_id,
            "model_uri": self.uri,
            "loaded_at": self.loaded_at.isoformat(),
            "features": list(self.features),
        }


def _smoke_test(model: ServedModel, rows: np.ndarray) -> None:
    try:
        scores = model.predict(rows)
    except Exception as exc:  # noqa: BLE001 - XGBoostError and whatever a broken booster raises
        raise ChampionLoadFailed(f"{model.uri} failed its smoke prediction: {exc}") from None
    problem = model.task.score_problem(scores, rows.shape[0])
    if problem:
        raise ChampionLoadFailed(f"{model.uri} failed its smoke prediction: {problem}")


_REGISTRY_IMPORT = threading.Lock()


def _registry():
    """The registry modules (and so MLflow and XGBoost), imported by one thread at a time.

    They are imported on the first load, in the loaders' threads: MLflow and XGBoost take seconds to import, and
    the endpoint answers /health (each project "loading") before that. The loads of every project and role start
    together, and MLflow's package imports itself circularly: several threads importing it at once deadlock on
    Python's module locks, or one of them sees a partially initialised `mlflow` (AttributeError: partially
    initialized module 'mlflow' has no attribute 'version'). That is why replicas started together on a busy
    machine stayed "loading" for good; the lock makes the first import one import."""
    with _REGISTRY_IMPORT:
        from mining_platform.registry import aliases, client, loading
    return loading, aliases, client, client.RegistryError


def load_version(tracking_uri: str, model_name: str, version: str, *, alias: str = CHAMPION) -> ServedModel:
    """Load one registered version and check that it can be served; raises ChampionLoadFailed saying why.

    A version whose quality gate did not pass is never served, whatever alias names it (an alias
    moved by hand in the MLflow UI included)."""
    loading, _, _, _ = _registry()
    try:
        loaded = loading.load_version(tracking_uri, model_name, version)
    except loading.RegistryUnavailable as exc:
        raise RegistryUnavailable(str(exc)) from None
    except loading.VersionUnusable as exc:
        raise ChampionLoadFailed(str(exc)) from None
    if loaded.tags.get(GATE_TAG) != PASSED:
        raise ChampionLoadFailed(f"{loaded.uri} is not served: its quality gate is "
                                 f"{loaded.tags.get(GATE_TAG, 'not evaluated')!r}")
    unsupported = [f"{name} ({kind})" for name, kind in loaded.columns if kind not in NUMERIC_TYPES | BOOLEAN_TYPES]
    if unsupported:
        raise ChampionLoadFailed(f"{loaded.uri}: non-numeric input columns cannot be served: {', '.join(unsupported)}")
    booster = loaded.booster
    # One thread: requests are small and scored one at a time on the event loop, where
    # OpenMP's thread team costs more than it saves (measured in bench/serving.py).
    booster.set_param({"nthread": 1})
    if booster.num_features() != len(loaded.columns):
        raise ChampionLoadFailed(f"{loaded.uri}: the booster expects {booster.num_features()} features but its "
                                 f"signature lists {len(loaded.columns)}")
    try:
        trained_features = json.loads(loaded.tags.get(FEATURES_TAG, "{}"))
    except json.JSONDecodeError:
        trained_features = None
    if not isinstance(trained_features, dict):
        raise ChampionLoadFailed(f"{loaded.uri}: its {FEATURES_TAG} tag is not a JSON object of feature sets")
    try:  # a version trained before tasks existed is binary
        parameters = json.loads(loaded.tags.get(TASK_PARAMETERS_TAG, "{}"))
        task = task_named(loaded.tags.get(TASK_TAG, BINARY.name), **(parameters if isinstance(parameters, dict) else {}))
    except (UnknownTask, json.JSONDecodeError) as exc:
        raise ChampionLoadFailed(f"{loaded.uri}: its {TASK_TAG} and {TASK_PARAMETERS_TAG} tags: {exc}") from None
    model = ServedModel(
        task=task, alias=alias,
        name=model_name, version=loaded.version, run_id=loaded.run_id, booster=booster, features=loaded.features,
        boolean_features=frozenset(name for name, kind in loaded.columns if kind in BOOLEAN_TYPES),
        trained_features=trained_features, loaded_at=dt.datetime.now(dt.timezone.utc),
    )
    smoke_rows = loaded.example if loaded.example is not None else np.full((1, len(model.features)), np.nan)
    _smoke_test(model, smoke_rows)
    return model


def aliased(tracking_uri: str, model_name: str, alias: str) -> str | None:
    """The version `alias` points at, or None; RegistryUnavailable when MLflow cannot be asked."""
    _, aliases, client, MlflowException = _registry()
    try:
        return aliases.alias_version(client.client(tracking_uri), model_name, alias)
    except MlflowException as exc:
        raise RegistryUnavailable(f"cannot read {model_name}@{alias} from the registry: {exc.message}") from None
    except OSError as exc:
        raise RegistryUnavailable(f"cannot reach the MLflow registry: {exc}") from None


def champion_version(tracking_uri: str, model_name: str) -> str:
    """The version the champion alias points at; NoChampion when there is none."""
    version = aliased(tracking_uri, model_name, CHAMPION)
    if version is None:
        raise NoChampion(f"registered model {model_name!r} has no {CHAMPION!r} alias yet")
    return version
