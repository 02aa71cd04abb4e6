"""The tasks a project can choose (`model.task`): one object per task, used by the spec, training, the gate,
serving, batch predictions, drift and realised performance. A new task is a module here and one in `judge/`."""

import dataclasses

from mining_platform.tasks.base import Metric, Task
from mining_platform.tasks.binary import BINARY, Binary
from mining_platform.tasks.multiclass import Multiclass
from mining_platform.tasks.regression import REGRESSION, Regression

__all__ = ["BINARY", "REGRESSION", "TASKS", "Metric", "Task", "UnknownTask", "gate_metric", "task_named"]

TASKS: dict[str, type[Task]] = {cls.name: cls for cls in (Binary, Regression, Multiclass)}


class UnknownTask(ValueError):
    """A task name (or its classes) the platform does not know."""


def task_named(name: str, **parameters) -> Task:
    """The task called `name`, with its parameters (`Task.parameters`: a multiclass task's `classes`)."""
    if name not in TASKS:
        raise UnknownTask(f"task {name!r} is not one of {', '.join(TASKS)}")
    unknown = [key for key in parameters if key not in {f.name for f in dataclasses.fields(TASKS[name])}]
    if unknown:
        raise UnknownTask(f"a {name} task takes no {', '.join(unknown)}")
    try:
        return TASKS[name](**parameters)
    except ValueError as exc:
        raise UnknownTask(f"{name}: {exc}") from None


def gate_metric(name: str) -> Metric | None:
    """The gate metric `name` of whichever task has it."""
    return next((m for task in TASKS.values() for m in task.gate_metrics if m.name == name), None)
