"""multiclass: labels are class indices 0..k-1 (or the classes' names, mapped to their indices by the label
definition's `classes`), scores a probability per class summing to 1 (`multi:softprob`)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mining_platform.tasks.base import Metric, Probability

if TYPE_CHECKING:  # numpy is imported by the methods that use it: loading a code location reads the spec
    import numpy as np

CLASS_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")  # an MLflow metric name and a Dagster metadata key
MAX_CLASSES = 100
SUM_TOLERANCE = 1e-4  # how far a row's probabilities may sum from 1 (float32 inside XGBoost)


@dataclass(frozen=True)
class Multiclass(Probability):
    classes: tuple[str, ...] = ()

    name = "multiclass"
    objective = "multi:softprob"
    eval_metric = ("merror", "mlogloss")
    gate_metrics = (Metric("macro_auc", "macro AUC", True), Metric("accuracy", "accuracy", True),
                    Metric("mlogloss", "log loss", False))
    headline = "mlogloss"
    kind = "classifier"
    label_type = "int"
    label_summary = "label_mean"  # the mean class index; the per-class shares are in realised performance
    score_meaning = "probability of each class"
    realised_metrics = ("log loss and accuracy with intervals, macro one-vs-rest AUC, and per class its share, "
                        "mean probability, one-vs-rest AUC (DeLong interval), precision and recall")

    def __post_init__(self):
        classes = tuple(self.classes)
        object.__setattr__(self, "classes", classes)
        problems = [f"{c!r} is not a class name (letters, digits, _ . -, at most 64)" for c in classes
                    if not isinstance(c, str) or not CLASS_NAME.match(c)]
        if len(set(classes)) != len(classes):
            problems.append("a class is named twice")
        if not classes:
            problems.append("name the classes in the label definition, class 0 first: classes: [a, b, c]")
        elif not 3 <= len(classes) <= MAX_CLASSES:
            problems.append(f"a multiclass task has 3 to {MAX_CLASSES} classes, got {len(classes)} "
                            "(two classes: use task binary)")
        if problems:
            raise ValueError("; ".join(problems))

    @property
    def label_wanted(self) -> str:  # type: ignore[override]
        return f"a class index 0..{len(self.classes) - 1} or one of the names {', '.join(self.classes)}"

    @property
    def score_shape(self) -> tuple[int, ...]:
        return (len(self.classes),)

    def parameters(self) -> dict:
        return {"classes": list(self.classes)}

    def booster_params(self) -> dict:
        return {**super().booster_params(), "num_class": len(self.classes)}

    def label_value(self, value: str) -> dict:
        # A class name becomes its index; an unknown name stays text and a boolean stays one: both are refused as
        # invalid, the unknown name shown as it was written.
        classes = {"$literal": list(self.classes)}
        return {"$cond": [{"$eq": [{"$type": value}, "string"]},
                          {"$cond": [{"$in": [value, classes]}, {"$indexOfArray": [classes, value]}, value]},
                          {"$ifNull": [value, None]}]}

    def invalid_label(self, label: str) -> dict:
        return {"$or": [{"$not": [{"$isNumber": label}]}, {"$not": [{"$in": [label, list(range(len(self.classes)))]}]}]}

    def invalid_labels(self, y: np.ndarray) -> np.ndarray:
        import numpy as np

        return ~np.isin(y, np.arange(len(self.classes), dtype=np.float64))

    def default_problem(self, default) -> str | None:
        if default is not None and default not in range(len(self.classes)):
            return f"default: a multiclass label is a class index 0..{len(self.classes) - 1} (or null), got {default!r}"
        return None

    def training_problem(self, y: np.ndarray) -> str | None:
        import numpy as np

        problem = super().training_problem(y)
        if problem is None and len(np.unique(y)) < 2:
            return f"all have label {np.unique(y).tolist()}; a classifier needs two classes at least"
        return problem

    def score_problem(self, scores: np.ndarray, rows: int) -> str | None:
        import numpy as np

        k = len(self.classes)
        if (scores.shape != (rows, k) or not np.all(np.isfinite(scores)) or np.any((scores < 0) | (scores > 1))
                or np.any(np.abs(scores.sum(axis=1) - 1.0) > SUM_TOLERANCE)):
            return (f"expected {rows} rows of {k} probabilities summing to 1, got shape {scores.shape} "
                    f"{scores[:2].tolist()}")
        return None

    def predicted(self, scores: np.ndarray) -> np.ndarray:
        """The most likely class of each row, as an index."""
        return scores.argmax(axis=1)

    def answer(self, scores: np.ndarray) -> dict:
        return {"predictions": scores.tolist(), "classes": list(self.classes),
                "predicted_class": [self.classes[i] for i in self.predicted(scores).tolist()]}

    def mean_score(self, scores: np.ndarray) -> float:
        """The mean probability of the most likely class (the model's mean confidence)."""
        return float(scores.max(axis=1).mean()) if len(scores) else 0.0

    def drift_values(self, scores: np.ndarray) -> np.ndarray:
        import numpy as np

        return self.predicted(np.asarray(scores, dtype=np.float64).reshape(-1, len(self.classes))).astype(np.float64)

    @property
    def drift_categories(self) -> tuple[str, ...] | None:
        return self.classes
