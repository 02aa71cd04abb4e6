"""Project configuration: `projects/<p>/project.yaml`, validated with pydantic."""

import datetime as dt
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, ValidationError, field_validator

from mining_platform.spec.strict import Strict, UnreadableFile, describe_validation_error, read_mapping

# A project name is an asset-key prefix, a Python attribute of
# mining_platform.definitions and part of collection names.
PROJECT_NAME = r"^[a-z][a-z0-9_]*$"
PROJECT_FILE = "project.yaml"


class ProjectConfigError(ValueError):
    """A project file is missing or invalid; the message names the file and the keys."""


class LabelConfig(Strict):
    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    horizon_days: int = Field(gt=0, le=365)


# Set by the platform from `model.training` or fixed by the task (binary classification).
PLATFORM_OWNED_PARAMS = {
    "objective": "the model is a binary classifier (binary:logistic)",
    "eval_metric": "the platform evaluates logloss and auc",
    "seed": "use model.training.seed",
    "random_state": "use model.training.seed",
    "device": "use model.training.device",
    "early_stopping_rounds": "use model.training.early_stopping_rounds",
    "num_boost_round": "use n_estimators",
}


class TrainingConfig(Strict):
    """Defaults of the model asset's run config; every key can be overridden per run."""

    samples_from: dt.date | None = Field(default=None, description="First sample partition (default: the first committed).")
    samples_to: dt.date | None = Field(default=None, description="Last sample partition (default: the last committed).")
    validation_days: int = Field(default=1, ge=1, le=365)
    embargo_days: int | None = Field(default=None, ge=0, le=365)
    early_stopping_rounds: int = Field(default=20, ge=1)
    seed: int = Field(default=0, ge=0)
    device: Literal["cpu", "cuda"] = "cpu"


class ModelConfig(Strict):
    name: str = Field(min_length=1)
    params: dict[str, int | float | str | bool] = Field(default_factory=dict)
    min_auc: float = Field(ge=0.0, le=1.0)
    max_regression: float = Field(ge=0.0, le=1.0)
    training: TrainingConfig = TrainingConfig()

    @field_validator("params")
    @classmethod
    def _platform_owned(cls, params: dict) -> dict:
        taken = [f"{key} ({PLATFORM_OWNED_PARAMS[key]})" for key in params if key in PLATFORM_OWNED_PARAMS]
        if taken:
            raise ValueError(f"set by the platform, not in model.params: {', '.join(taken)}")
        return params


class DriftConfig(Strict):
    psi_threshold: float = Field(gt=0.0)
    min_drifted_features: int = Field(ge=1)


class DemoConfig(Strict):
    """Size and seed of the demo event generator's population (fixed per project)."""

    users: int = Field(default=2000, ge=1, le=1_000_000)
    seed: int = Field(default=7, ge=0)


class ProjectConfig(Strict):
    name: Annotated[str, Field(pattern=PROJECT_NAME)]
    entity: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    events: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_.-]*$")
    start_date: dt.date
    label: LabelConfig
    model: ModelConfig
    drift: DriftConfig
    demo: DemoConfig = DemoConfig()


def load_project(project_dir: Path) -> ProjectConfig:
    """Read and validate `<project_dir>/project.yaml`; the folder name must equal `name`."""
    path = project_dir / PROJECT_FILE
    try:
        raw = read_mapping(path)
    except UnreadableFile as exc:
        raise ProjectConfigError(f"{path}: {exc}") from None
    try:
        project = ProjectConfig.model_validate(raw)
    except ValidationError as exc:
        listed = "\n".join(f"  {line}" for line in describe_validation_error(exc))
        raise ProjectConfigError(f"{path}: invalid project file:\n{listed}") from None
    if project.name != project_dir.name:
        raise ProjectConfigError(
            f"{path}: name: {project.name!r} must equal the project folder name {project_dir.name!r}"
        )
    return project


def project_names(projects_dir: Path) -> list[str]:
    """Every folder under `projects_dir` that holds a project file, sorted."""
    return sorted(p.parent.name for p in projects_dir.glob(f"*/{PROJECT_FILE}"))
