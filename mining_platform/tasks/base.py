"""What a task is: how its labels look (in MongoDB and in numpy), what XGBoost optimises and reports, which
metrics may gate a version and in which direction, what a score is and how the endpoint answers with it.

A `Task` is light (numpy only): the endpoint and the spec use it. How a task's versions are judged (metrics,
intervals, plots: scikit-learn, scipy, matplotlib) is its `Judge`, in `mining_platform.tasks.judge`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:  # numpy is imported by the methods that use it: loading a code location reads the spec
    import numpy as np


@dataclass(frozen=True)
class Metric:
    name: str
    title: str  # as a sentence shows it: "AUC", "log loss"
    higher_is_better: bool


@dataclass(frozen=True)
class Task:
    """One kind of question a model answers. Subclasses set the class variables and override what differs."""

    name: ClassVar[str]
    objective: ClassVar[str]
    eval_metric: ClassVar[tuple[str, ...]]  # what XGBoost reports; the last one drives early stopping
    gate_metrics: ClassVar[tuple[Metric, ...]]  # what may gate a version (the first is the scaffold's choice)
    headline: ClassVar[str]  # the metric measured on the training rows too: train_<headline>, the overfitting yardstick
    kind: ClassVar[str]  # "classifier" or "regressor"
    label_type: ClassVar[str]  # the label column's type in Dagster's table schema
    label_wanted: ClassVar[str]  # a valid label, in words
    label_summary: ClassVar[str]  # the samples' label statistic: positive_rate or label_mean
    score_meaning: ClassVar[str]  # what a score is, in words
    realised_metrics: ClassVar[str]  # what realised performance reports, in words
    score_range: ClassVar[tuple[float, float] | None] = None  # the bounds every score lies within, if any
    classes: ClassVar[tuple[str, ...]] = ()  # a classifier of named classes: their names, class i first

    @property
    def score_shape(self) -> tuple[int, ...]:
        """The shape of one row's score: () for one number, (classes,) for a score per class."""
        return ()

    def parameters(self) -> dict:
        """What the task is made with besides its name (JSON): `task_named(name, **parameters)` makes it again."""
        return {}

    def booster_params(self) -> dict:
        return {"objective": self.objective, "eval_metric": list(self.eval_metric)}

    def gate_metric(self, name: str) -> Metric | None:
        return next((m for m in self.gate_metrics if m.name == name), None)

    # Labels -----------------------------------------------------------------------------------------------

    def label_value(self, value: str) -> dict:
        """The MongoDB expression that stores a label document's `value` (booleans as 0/1)."""
        return {"$cond": [{"$eq": [{"$type": value}, "bool"]}, {"$toInt": value}, {"$ifNull": [value, None]}]}

    def invalid_label(self, label: str) -> dict:
        """A MongoDB expression, true when the stored label `label` is not valid for the task."""
        return {"$or": [{"$not": [{"$isNumber": label}]}, {"$in": [label, [math.inf, -math.inf, math.nan]]}]}

    def invalid_labels(self, y: np.ndarray) -> np.ndarray:
        """Which of the (present) labels `y` are not valid for the task."""
        import numpy as np
        return ~np.isfinite(y)

    def default_problem(self, default) -> str | None:
        """Why a label definition's `default` cannot be a label of this task, or None."""
        return None

    def training_problem(self, y: np.ndarray) -> str | None:
        """Why labels `y` (of the training or the validation rows) cannot train or judge a version, or None."""
        import numpy as np
        bad = y[self.invalid_labels(y)]
        if bad.size:
            return f"hold labels that are not {self.label_wanted} ({np.unique(bad)[:5].tolist()})"
        return None

    # Scores -----------------------------------------------------------------------------------------------

    def score_problem(self, scores: np.ndarray, rows: int) -> str | None:
        """Why `scores` (a model's output for `rows` rows) are not what the task scores, or None."""
        import numpy as np
        if scores.shape != (rows,) or not np.all(np.isfinite(scores)):
            return f"expected {rows} finite values, got shape {scores.shape} {scores[:5].tolist()}"
        return None

    def answer(self, scores: np.ndarray) -> dict:
        """The endpoint's answer for these scores (in request order)."""
        return {"predictions": scores.tolist()}

    def describe(self) -> dict:
        return {"task": self.name, **self.parameters()}

    def mean_score(self, scores: np.ndarray) -> float:
        """One number for a day's scores, to read at a glance: their mean."""
        return float(scores.mean()) if len(scores) else 0.0

    def drift_values(self, scores: np.ndarray) -> np.ndarray:
        """What the score drift compares: the scores themselves, one value per row."""
        import numpy as np
        return np.asarray(scores, dtype=np.float64)

    @property
    def drift_categories(self) -> tuple[str, ...] | None:
        """The categories `drift_values` falls in, or None for a numeric score."""
        return None


class Probability(Task):
    """A task whose scores are probabilities in [0, 1]."""

    score_range = (0.0, 1.0)

    def score_problem(self, scores: np.ndarray, rows: int) -> str | None:
        import numpy as np
        if scores.shape != (rows,) or not np.all(np.isfinite(scores)) or np.any((scores < 0) | (scores > 1)):
            return f"expected {rows} probabilities in [0, 1], got shape {scores.shape} {scores[:5].tolist()}"
        return None
