"""How each task's versions are judged (scikit-learn, scipy, matplotlib: never loaded by the endpoint)."""

from mining_platform.tasks.base import Task
from mining_platform.tasks.judge.base import Judge
from mining_platform.tasks.judge.binary import BinaryJudge
from mining_platform.tasks.judge.multiclass import MulticlassJudge
from mining_platform.tasks.judge.regression import RegressionJudge
from mining_platform.tasks.judge.statistics import Interval, Realised

JUDGES: dict[str, type[Judge]] = {"binary": BinaryJudge, "regression": RegressionJudge, "multiclass": MulticlassJudge}

__all__ = ["Interval", "Judge", "Realised", "compare", "judge_of", "realised"]


def judge_of(task: Task) -> Judge:
    return JUDGES[task.name](task)


def realised(task: Task, y, scores, *, confidence: float) -> Realised:
    return judge_of(task).realised(y, scores, confidence=confidence)


def compare(task: Task, gate_metric: str, y, champion, challenger, *, confidence: float) -> Interval | None:
    return judge_of(task).compare(gate_metric, y, champion, challenger, confidence=confidence)
