"""`model:` of project.yaml: the registered model's name, its task, XGBoost params (those the platform sets
refused), the blocking gate and the model asset's run-config defaults."""

import datetime as dt
from typing import Literal

from pydantic import Field, field_validator, model_validator

from mining_platform.spec.strict import Strict
from mining_platform.tasks import TASKS, gate_metric

# The tasks and gate metrics as the YAML names them (their meaning: mining_platform.tasks).
TaskName = Literal[tuple(TASKS)]  # type: ignore[valid-type]
GateMetricName = Literal[tuple(dict.fromkeys(m.name for t in TASKS.values() for m in t.gate_metrics))]  # type: ignore[valid-type]

# Set by the platform from `model.training` or fixed by `model.task`.
PLATFORM_OWNED_PARAMS = {
    "objective": "set by model.task (" + ", ".join(t.objective for t in TASKS.values()) + ")",
    "eval_metric": "the platform evaluates the metrics of model.task",
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


class GateConfig(Strict):
    """The blocking gate: an absolute bound on one validation metric, and no loss against the champion.

    `min` for a higher-is-better metric (auc, pr_auc, r2), `max` for a lower-is-better one
    (logloss, rmse, mae); `max_regression` is the loss allowed against the champion on the
    same rows, in the metric's units.
    """

    metric: GateMetricName
    min: float | None = None
    max: float | None = None
    max_regression: float = Field(ge=0.0)

    @property
    def higher_is_better(self) -> bool:
        return gate_metric(self.metric).higher_is_better

    @property
    def bound(self) -> float:
        return self.min if self.higher_is_better else self.max  # type: ignore[return-value]

    @model_validator(mode="after")
    def _one_bound(self) -> "GateConfig":
        wanted, other = ("min", "max") if self.higher_is_better else ("max", "min")
        if getattr(self, other) is not None:
            raise ValueError(f"{self.metric} is {'higher' if wanted == 'min' else 'lower'}-is-better: give "
                             f"`{wanted}`, not `{other}`")
        if getattr(self, wanted) is None:
            raise ValueError(f"give `{wanted}`: the {'lowest' if wanted == 'min' else 'highest'} {self.metric} "
                             "a version may have to pass")
        return self


class ModelConfig(Strict):
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$", max_length=120)
    task: TaskName = "binary"
    params: dict[str, int | float | str | bool] = Field(default_factory=dict)
    gate: GateConfig
    training: TrainingConfig = TrainingConfig()

    @model_validator(mode="before")
    @classmethod
    def _moved_keys(cls, raw):
        if isinstance(raw, dict) and ("min_auc" in raw or ("max_regression" in raw and "gate" not in raw)):
            raise ValueError("min_auc and max_regression moved into model.gate: "
                             "{metric: auc, min: <floor>, max_regression: <allowed loss>}")
        return raw

    @field_validator("params")
    @classmethod
    def _platform_owned(cls, params: dict) -> dict:
        taken = [f"{key} ({PLATFORM_OWNED_PARAMS[key]})" for key in params if key in PLATFORM_OWNED_PARAMS]
        if taken:
            raise ValueError(f"set by the platform, not in model.params: {', '.join(taken)}")
        return params

    @model_validator(mode="after")
    def _gate_fits_task(self) -> "ModelConfig":
        metrics = [m.name for m in TASKS[self.task].gate_metrics]
        if self.gate.metric not in metrics:
            raise ValueError(f"gate.metric {self.gate.metric!r} does not apply to a {self.task} model "
                             f"(choose {', '.join(metrics)})")
        return self
