"""The drift reference of a model version: logged with it as the MLflow artifact `drift_reference.json`,
read back (once per process and run) for drift reports.

Drift is always measured against what the champion learned from: its training and
validation rows (the validation rows steer early stopping) and its scores on the
validation rows, which had not been trained on, like live traffic.
"""

import functools
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from mlflow.exceptions import MlflowException

from mining_platform.registry.aliases import Champion
from mining_platform.registry.client import client
from mining_platform.registry.distribution import Distribution, categorical_reference, numeric_reference

REFERENCE_ARTIFACT = "drift_reference.json"
REFERENCE_FORMAT = 1


class ReferenceUnavailable(RuntimeError):
    """The champion has no usable drift reference; the message says why and what to do."""


@dataclass(frozen=True)
class ModelReference:
    features: dict[str, Distribution]
    scores: Distribution
    sample_partitions: tuple[str, ...]

    def to_json(self) -> dict:
        return {
            "format": REFERENCE_FORMAT,
            "sample_partitions": list(self.sample_partitions),
            "features": {name: d.to_json() for name, d in self.features.items()},
            "scores": self.scores.to_json(),
        }

    @classmethod
    def from_json(cls, raw: dict) -> "ModelReference":
        if raw.get("format") != REFERENCE_FORMAT:
            raise ValueError(f"reference format {raw.get('format')!r}, this platform reads {REFERENCE_FORMAT}")
        return cls(
            features={name: Distribution.from_json(d) for name, d in raw["features"].items()},
            scores=Distribution.from_json(raw["scores"]),
            sample_partitions=tuple(raw["sample_partitions"]),
        )


def build_reference(
    *, X: np.ndarray, features: list[str], boolean_features: set[str], validation_scores: np.ndarray,
    sample_partitions: list[str], seed: int = 0, score_categories: tuple[str, ...] | None = None,
) -> ModelReference:
    """Per-feature distributions of the rows `X` (columns in `features` order, NaN = missing), and of the
    validation scores (numeric, or categorical over `score_categories`: a classifier's predicted class)."""
    distributions = {}
    for column, name in enumerate(features):
        values = X[:, column]
        distributions[name] = (categorical_reference(values) if name in boolean_features
                               else numeric_reference(values, seed=seed))
    return ModelReference(
        features=distributions,
        scores=(numeric_reference(validation_scores, seed=seed) if score_categories is None
                else categorical_reference(validation_scores, score_categories)),
        sample_partitions=tuple(sample_partitions),
    )


@functools.lru_cache(maxsize=16)
def _downloaded(tracking_uri: str, run_id: str) -> ModelReference:
    # A run's artifacts never change: read each reference once per process.
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(client(tracking_uri).download_artifacts(run_id, REFERENCE_ARTIFACT, scratch))
        return ModelReference.from_json(json.loads(path.read_text()))


def load_reference(tracking_uri: str, model: Champion) -> ModelReference:
    """The reference logged with the version's run; ReferenceUnavailable when it has none."""
    try:
        return _downloaded(tracking_uri, model.run_id)
    except MlflowException as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE") or "No such file" in str(exc):
            raise ReferenceUnavailable(_missing(model, "it has no " + REFERENCE_ARTIFACT)) from None
        raise
    except (OSError, KeyError, ValueError) as exc:
        raise ReferenceUnavailable(_missing(model, f"its {REFERENCE_ARTIFACT} is unreadable: {exc}")) from None


def _missing(model: Champion, why: str) -> str:
    return (f"{model.name} version {model.version} (run {model.run_id}) cannot be compared for drift: {why}. "
            "Versions trained before drift monitoring have none; retrain and deploy a new version")
