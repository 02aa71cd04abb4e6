"""Label definitions: `projects/<p>/labels/<name>.yaml`, the forward-looking twin of a feature definition.

A label definition is an aggregation over one source that yields one document per
entity, `{_id: <entity>, value: <label>}`, from the events of the label window
[as_of, horizon_end). It is versioned, registered, safety-walked and parameterised
exactly like a feature definition; the sample build runs it in the database.

A multiclass label names its classes (`classes: [basic, plus, premium]`): the pipeline's `value` is a class
name or a class index, stored as the index.

`default` is the label of an entity that has features at as_of but no label
document (for churn: no event in the window means churned, 1); `null` means such an
entity is not a sample at all.
"""

from pathlib import Path
from typing import Any

from pydantic import Field, StrictFloat, StrictInt, ValidationError

from mining_platform.spec.definition import (
    DefinitionError,
    VersionedDefinition,
    common_problems,
    partition_expansion_problems,
)
from mining_platform.spec.parameters import LABEL_PARAMETERS, label_parameter_values
from mining_platform.spec.project import ProjectConfig
from mining_platform.spec.strict import UnreadableFile, describe_validation_error, read_mapping
from mining_platform.tasks import UnknownTask, task_named

LABELS_DIR = "labels"


class LabelDefinitionError(DefinitionError):
    """A label definition is missing or invalid."""


class LabelDefinition(VersionedDefinition):
    horizon_days: StrictInt = Field(ge=1, le=3650)
    pipeline: list[dict[str, Any]] = Field(min_length=1)
    # Required, and may be null: whether an entity without a label document is a sample is a decision.
    default: StrictInt | StrictFloat | None
    # A multiclass label's class names, class 0 first (absent for the other tasks: hashed as before it existed).
    classes: list[str] | None = Field(default=None, min_length=1)

    def task_parameters(self) -> dict:
        """What the project's task is made with from this definition (`mining_platform.tasks.task_named`)."""
        return {} if self.classes is None else {"classes": self.classes}

    @property
    def registry_name(self) -> str:
        """Labels are registered apart from feature sets: `labels/<name>`."""
        return f"labels/{self.name}"


def label_path(project_dir: Path, name: str) -> Path:
    return project_dir / LABELS_DIR / f"{name}.yaml"


def load_label_definition(project_dir: Path, project: ProjectConfig) -> LabelDefinition:
    """The label definition `project.yaml` names; raises LabelDefinitionError listing all its problems."""
    path = label_path(project_dir, project.label)
    try:
        raw = read_mapping(path)
    except UnreadableFile as exc:
        hint = f" (project.yaml names label {project.label!r})" if "not found" in str(exc) else ""
        raise LabelDefinitionError(path, [f"{exc}{hint}"]) from None
    problems = common_problems(raw, path, project, LABEL_PARAMETERS)
    if "default" in raw and isinstance(raw["default"], bool):
        problems.append("default: a number or null (write 1 or 0, not true or false)")
    try:
        definition = LabelDefinition.model_validate(raw)
    except ValidationError as exc:
        problems = describe_validation_error(exc) + problems
    if problems:
        raise LabelDefinitionError(path, problems)
    try:
        task = task_named(project.model.task, **definition.task_parameters())
    except UnknownTask as exc:
        raise LabelDefinitionError(path, [f"classes: {exc}"]) from None
    problem = task.default_problem(definition.default)
    if problem:
        raise LabelDefinitionError(path, [problem])
    problems = partition_expansion_problems(definition.pipeline, lambda as_of: label_parameter_values(
        as_of=as_of, horizon_days=definition.horizon_days, declared=definition.parameters), project)
    if problems:
        raise LabelDefinitionError(path, problems)
    return definition
