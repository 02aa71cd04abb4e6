"""regression: labels any finite number, scores the predicted value (`reg:squarederror`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # numpy is imported by the methods that use it: loading a code location reads the spec
    import numpy as np

from mining_platform.tasks.base import Metric, Task


@dataclass(frozen=True)
class Regression(Task):
    name = "regression"
    objective = "reg:squarederror"
    eval_metric = ("mae", "rmse")
    gate_metrics = (Metric("r2", "R²", True), Metric("rmse", "RMSE", False), Metric("mae", "MAE", False))
    headline = "rmse"
    kind = "regressor"
    label_type = "float"
    label_wanted = "a finite number"
    label_summary = "label_mean"
    score_meaning = "predicted value"
    realised_metrics = "RMSE, MAE and R² with intervals, and calibration"

    def training_problem(self, y: np.ndarray) -> str | None:
        import numpy as np
        problem = super().training_problem(y)
        if problem is None and len(np.unique(y)) < 2:
            return f"all have label {np.unique(y).tolist()}; a regression needs labels that vary"
        return problem


REGRESSION = Regression()
