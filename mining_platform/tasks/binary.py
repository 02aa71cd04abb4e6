"""binary: labels 0 or 1, scores the probability of 1 (`binary:logistic`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # numpy is imported by the methods that use it: loading a code location reads the spec
    import numpy as np

from mining_platform.tasks.base import Metric, Probability


@dataclass(frozen=True)
class Binary(Probability):
    name = "binary"
    objective = "binary:logistic"
    eval_metric = ("logloss", "auc")
    gate_metrics = (Metric("auc", "AUC", True), Metric("pr_auc", "PR AUC", True), Metric("logloss", "log loss", False))
    headline = "auc"
    kind = "classifier"
    label_type = "int"
    label_wanted = "0 or 1"
    label_summary = "positive_rate"
    score_meaning = "probability of the label"
    realised_metrics = "AUC (DeLong interval), PR AUC, log loss, Brier score and calibration"

    def invalid_label(self, label: str) -> dict:
        return {"$not": [{"$in": [label, [0, 1]]}]}

    def invalid_labels(self, y: np.ndarray) -> np.ndarray:
        import numpy as np
        return ~np.isin(y, [0.0, 1.0])

    def default_problem(self, default) -> str | None:
        if default not in (None, 0, 1):
            return f"default: a binary label is 0 or 1 (or null), got {default!r}"
        return None

    def training_problem(self, y: np.ndarray) -> str | None:
        import numpy as np
        if not set(np.unique(y).tolist()) <= {0.0, 1.0}:
            return f"hold labels other than 0 and 1 ({np.unique(y)[:5].tolist()}); a binary task needs 0/1 labels"
        if len(np.unique(y)) < 2:
            return f"all have label {np.unique(y).tolist()}; AUC needs both classes"
        return None


BINARY = Binary()
