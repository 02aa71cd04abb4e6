"""`<p>/model`: an XGBoost version trained on committed samples, registered in MLflow, judged by a blocking gate."""

import hashlib
import json
from enum import Enum
from typing import TYPE_CHECKING

import dagster as dg
from pydantic import Field

from assets.keys import project_keys
from assets.resilience import failures_classified, permanent, retry_policy
from mining_platform import settings
from mining_platform.samples.pipeline import SamplesPipeline
from mining_platform.spec import ProjectSpec
from mining_platform.spec.tags import PLATFORM_TAG_PREFIX  # run tags copied onto the version's run: why it was trained
from resources import MlflowResource, MongoResource

if TYPE_CHECKING:
    from mining_platform.training.model import TrainingOutcome

GATE_CHECK = "gate"


class Device(Enum):
    cpu = "cpu"
    cuda = "cuda"


class TrainingRunConfig(dg.Config):
    """Overrides of `model.training` in project.yaml for one run; unset keys keep the project's value."""

    samples_from: str | None = Field(default=None, description="First sample partition (YYYY-MM-DD); default: the first committed.")
    samples_to: str | None = Field(default=None, description="Last sample partition (YYYY-MM-DD); default: the last committed.")
    validation_days: int | None = Field(default=None, ge=1, description="The latest partitions held out for validation.")
    embargo_days: int | None = Field(default=None, ge=0, description="Days between the last training and the first validation as_of (default: the label horizon).")
    early_stopping_rounds: int | None = Field(default=None, ge=1, description="Stop after this many rounds without validation AUC gain.")
    seed: int | None = Field(default=None, ge=0, description="XGBoost seed; same samples + config give the same model.")
    device: Device | None = Field(default=None, description="'cuda' trains on the GPU when one is usable.")
    use_sample_cache: bool = Field(
        default=True,
        description="Read sample partitions loaded by an earlier training from $MINING_HOME/cache/samples "
        "(committed partitions never change; replaced ones are evicted).",
    )

    def resolve(self, spec: ProjectSpec):
        """project.yaml's training settings with this run's overrides, validated together."""
        defaults = spec.project.model.training
        overrides = {key: value.value if isinstance(value, Enum) else value
                     for key, value in self.model_dump(exclude={"use_sample_cache"}).items() if value is not None}
        try:
            resolved = type(defaults).model_validate({**defaults.model_dump(), **overrides})
        except ValueError as exc:
            raise permanent(f"invalid training config: {exc}") from None
        if resolved.samples_from and resolved.samples_to and resolved.samples_from > resolved.samples_to:
            raise permanent(f"invalid training config: samples_from {resolved.samples_from} is after "
                            f"samples_to {resolved.samples_to}")
        return resolved


def model_code_version(spec: ProjectSpec) -> str:
    """What defines a model besides its data: the samples' definition and the model section of project.yaml."""
    canonical = json.dumps({"samples": SamplesPipeline(spec).content_hash, "model": spec.project.model.model_dump(mode="json")}, sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _metadata(outcome: "TrainingOutcome") -> dict:
    logged, data = outcome.logged, outcome.data
    return {
        "model_name": dg.MetadataValue.text(logged.name),
        "model_version": dg.MetadataValue.text(logged.version),
        "model_uri": dg.MetadataValue.text(logged.uri),
        "mlflow_run_id": dg.MetadataValue.text(logged.run_id),
        **({"mlflow_run_url": dg.MetadataValue.url(logged.run_url)} if logged.run_url else {}),
        **{name: dg.MetadataValue.float(round(value, 6)) for name, value in outcome.metrics.items()},
        "gate": dg.MetadataValue.text("passed" if outcome.gate.passed else "failed"),
        "gate_reason": dg.MetadataValue.text(outcome.gate.reason),
        "best_iteration": dg.MetadataValue.int(outcome.best_iteration),
        "train_rows": dg.MetadataValue.int(data.train.rows),
        "validation_rows": dg.MetadataValue.int(data.validation.rows),
        "train_partitions": dg.MetadataValue.text(" .. ".join(data.train.partitions())),
        "validation_partitions": dg.MetadataValue.text(" .. ".join(data.validation.partitions())),
        "features": dg.MetadataValue.json(data.features),
        "feature_versions": dg.MetadataValue.json(data.feature_versions),
        "device": dg.MetadataValue.text(outcome.settings.params["device"] + (f" ({outcome.device_note})" if outcome.device_note else "")),
        "partitions_from_cache": dg.MetadataValue.int(data.partitions_cached),
        "seconds": dg.MetadataValue.json({k: round(v, 3) for k, v in outcome.seconds.items()}),
        **{f"plot_{name.removesuffix('.png')}": dg.MetadataValue.md(md) for name, md in outcome.plots_markdown.items()},
    }


def _gate_result(outcome: "TrainingOutcome") -> dg.AssetCheckResult:
    gate = outcome.gate
    return dg.AssetCheckResult(
        check_name=GATE_CHECK,
        passed=gate.passed,
        severity=dg.AssetCheckSeverity.ERROR,
        description=gate.reason,
        metadata={
            "model_version": dg.MetadataValue.text(outcome.logged.version),
            "metric": dg.MetadataValue.text(gate.metric),
            gate.metric: dg.MetadataValue.float(round(gate.value, 6)),
            ("min" if gate.gate.higher_is_better else "max"): dg.MetadataValue.float(gate.gate.bound),
            "max_regression": dg.MetadataValue.float(gate.gate.max_regression),
            "champion_version": dg.MetadataValue.text(gate.champion.version if gate.champion else "none"),
            f"champion_{gate.metric}": dg.MetadataValue.float(round(gate.champion_value, 6))
            if gate.champion_value is not None else dg.MetadataValue.null(),
            "reason": dg.MetadataValue.text(gate.reason),
        },
    )


def build_model_asset(spec: ProjectSpec) -> dg.AssetsDefinition:
    project = spec.project
    model = project.model
    keys = project_keys(spec)
    key = keys.model
    gate = model.gate
    bound = f"{gate.metric} {'≥' if gate.higher_is_better else '≤'} {gate.bound}"

    @dg.asset(
        key=key,
        deps=[dg.AssetDep(keys.samples)],
        code_version=model_code_version(spec),
        retry_policy=retry_policy(),
        group_name="training",
        kinds={"xgboost", "mlflow"},
        description=f"XGBoost {spec.task_type.kind} ({model.task}) of `{spec.label}`, registered in MLflow as `{model.name}` (every "
        f"trained version). Trained on the committed sample partitions (all by default), validated on the latest "
        f"{model.training.validation_days} with early stopping. The blocking `{GATE_CHECK}` check passes a version "
        f"only with {bound} and at most {gate.max_regression} {gate.metric} worse than the champion on the same "
        f"validation rows; its verdict is the version's `mining.gate` tag.",
        check_specs=[dg.AssetCheckSpec(
            name=GATE_CHECK, asset=key, blocking=True,
            description=f"{bound} and no more than {gate.max_regression} {gate.metric} worse than the champion on the "
            "same validation rows; a failed version stays registered and can never become champion.",
        )],
    )
    def model_asset(context: dg.AssetExecutionContext, config: TrainingRunConfig, mongo: MongoResource,
                    mlflow: MlflowResource) -> dg.MaterializeResult:
        # XGBoost, MLflow and matplotlib: loaded by the training step, not by the code location.
        from mining_platform.training.model import train_and_register

        with failures_classified():
            outcome = train_and_register(
                db=mongo.project_db(spec.name), spec=spec, training=config.resolve(spec), tracking_uri=mlflow.tracking_uri,
                artifact_location=mlflow.artifact_location, dagster_run_id=context.run.run_id, log=context.log,
                # Why this run trains (the drift sensor's cause tags) travels with the version.
                cause_tags={k: v for k, v in context.run.tags.items() if k.startswith(PLATFORM_TAG_PREFIX)},
                sample_cache=settings.mining_home() / "cache" / "samples" if config.use_sample_cache else None,
            )
            return dg.MaterializeResult(metadata=_metadata(outcome), check_results=[_gate_result(outcome)])

    return model_asset
