"""One training: load committed samples, train, evaluate, log and register in MLflow, judge the gate."""

import datetime as dt
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pymongo.database import Database

from mining_platform import figures
from mining_platform.registry import versions
from mining_platform.registry.client import client as mlflow_client
from mining_platform.registry.reference import REFERENCE_ARTIFACT, ModelReference, build_reference
from mining_platform.spec import ProjectSpec
from mining_platform.spec.model_config import TrainingConfig
from mining_platform.spec.tags import (
    DAGSTER_RUN_TAG,
    FEATURES_TAG,
    LABEL_TAG,
    PROJECT_TAG,
    SAMPLES_TAG,
    TASK_PARAMETERS_TAG,
    TASK_TAG,
)
from mining_platform.tasks.judge import judge_of
from mining_platform.training.booster import (
    BoosterSettings,
    predict,
    resolve_device,
    train_booster,
    train_metric,
)
from mining_platform.training.dataset import TrainingData, load_training_data
from mining_platform.training.gate import GateResult, decide, score_champion


@dataclass
class TrainingOutcome:
    data: TrainingData
    settings: BoosterSettings
    metrics: dict[str, float]
    logged: versions.LoggedVersion
    gate: GateResult
    best_iteration: int
    device_note: str | None
    plots_markdown: dict[str, str]
    seconds: dict[str, float] = field(default_factory=dict)


def lineage_tags(spec: ProjectSpec, data: TrainingData, *, dagster_run_id: str | None) -> dict[str, str]:
    """The `mining.*` lineage tags: what the version was trained on and by which Dagster run."""
    train_from, train_to = data.train.partitions()
    validation_from, validation_to = data.validation.partitions()
    return {
        PROJECT_TAG: spec.project.name,
        DAGSTER_RUN_TAG: dagster_run_id or "",
        TASK_TAG: spec.task_type.name,
        **({TASK_PARAMETERS_TAG: json.dumps(spec.task_type.parameters(), sort_keys=True)} if spec.task_type.parameters()
           else {}),
        LABEL_TAG: json.dumps({"name": spec.label_definition.name, "version": spec.label_definition.version,
                                    "hash": spec.label_definition.content_hash}, sort_keys=True),
        FEATURES_TAG: json.dumps(data.feature_versions, sort_keys=True),
        SAMPLES_TAG: json.dumps({
            "collection": spec.samples_collection,
            "from": data.sample_partitions[0],
            "to": data.sample_partitions[-1],
            "partitions": len(data.sample_partitions),
            "train": [train_from, train_to],
            "validation": [validation_from, validation_to],
        }),
    }


def drift_reference(spec: ProjectSpec, data: TrainingData, validation_scores, *, seed: int) -> ModelReference:
    """The distributions drift reports compare against: every row the version learned from."""
    return build_reference(
        X=np.vstack([data.train.X, data.validation.X]), features=data.features, boolean_features=spec.boolean_features(),
        validation_scores=spec.task_type.drift_values(validation_scores), score_categories=spec.task_type.drift_categories,
        sample_partitions=data.sample_partitions, seed=seed,
    )


def train_and_register(
    *,
    db: Database,
    spec: ProjectSpec,
    training: TrainingConfig,
    tracking_uri: str,
    artifact_location: str | None = None,
    sample_cache: Path | None = None,
    dagster_run_id: str | None = None,
    cause_tags: dict[str, str] | None = None,
    log: logging.Logger | logging.LoggerAdapter = logging.getLogger(__name__),
) -> TrainingOutcome:
    """Train a version on the configured sample range and register it with its gate verdict.

    Every trained version is registered, a failing one included: `mining.gate` says
    whether it may ever become champion. `cause_tags` (why it was trained, e.g. the
    drift sensor's `mining.drift.*`) are added to the run's tags.
    """
    model = spec.project.model
    seconds = {}
    clock = time.perf_counter()
    data = load_training_data(
        db, spec, start=training.samples_from, end=training.samples_to,
        validation_days=training.validation_days,
        embargo_days=spec.label_definition.horizon_days if training.embargo_days is None else training.embargo_days,
        cache_root=sample_cache,
    )
    seconds["load"] = time.perf_counter() - clock
    log.info(f"loaded {data.train.rows} training rows ({'..'.join(data.train.partitions())}) and "
             f"{data.validation.rows} validation rows ({'..'.join(data.validation.partitions())}); "
             f"{data.partitions_cached} of {len(data.sample_partitions)} partitions from the local cache")

    device, device_note = resolve_device(training.device)
    if device_note:
        log.warning(device_note)
    settings = BoosterSettings.from_model_params(
        model.params, task=spec.task_type, seed=training.seed, device=device, early_stopping_rounds=training.early_stopping_rounds
    )
    clock = time.perf_counter()
    booster = train_booster(data, settings, spec.task_type)
    seconds["train"] = time.perf_counter() - clock

    clock = time.perf_counter()
    scores = predict(booster, data.validation.X)
    judge = judge_of(spec.task_type)
    metrics = judge.evaluate(data.validation.y, scores)
    name, value = train_metric(booster, data, task=spec.task_type, seed=training.seed)
    metrics[name] = value
    best_iteration = int(booster.attr("best_iteration"))
    champion = score_champion(tracking_uri, model.name, data.validation, data.features, task=spec.task_type,
                              metric=model.gate.metric)
    evaluation = judge.figures(booster, data.validation.y, scores, metrics)
    reference = drift_reference(spec, data, scores, seed=training.seed)
    seconds["evaluate"] = time.perf_counter() - clock
    try:
        clock = time.perf_counter()
        logged = versions.log_and_register(
            tracking_uri=tracking_uri,
            experiment=spec.project.name,
            artifact_location=artifact_location,
            model_name=model.name,
            run_name=f"{model.name}-" + (dagster_run_id[:8] if dagster_run_id
                                         else dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S")),
            booster=booster,
            features=data.features,
            X_example=data.validation.X[:50],
            scores_example=scores[:50],
            params={
                **settings.params,
                "num_boost_round": settings.num_boost_round,
                "early_stopping_rounds": settings.early_stopping_rounds,
                "validation_days": training.validation_days,
                "embargo_days": data.embargo_days,
                "train_rows": data.train.rows,
                "validation_rows": data.validation.rows,
            },
            metrics={**metrics, "best_iteration": best_iteration},
            figures=evaluation,
            tags={**(cause_tags or {}), **lineage_tags(spec, data, dagster_run_id=dagster_run_id)},
            extra_artifacts={"training_data.json": {
                "features": data.features,
                "sample_partitions": data.sample_partitions,
                "feature_versions": data.feature_versions,
            }, REFERENCE_ARTIFACT: reference.to_json()},
        )
        seconds["log_and_register"] = time.perf_counter() - clock
        plots_markdown = {name: figures.png_markdown(figure, name) for name, figure in evaluation.items()}
    finally:
        figures.close(evaluation.values())

    gate = decide(gate=model.gate, value=metrics[model.gate.metric], champion=champion, rows=data.validation.rows)
    versions.record_gate(mlflow_client(tracking_uri), logged, passed=gate.passed, reason=gate.reason)
    log.info(f"{model.name} v{logged.version}: {model.gate.metric} {metrics[model.gate.metric]:.4f}; gate {'passed' if gate.passed else 'FAILED'}: "
             f"{gate.reason}")
    return TrainingOutcome(
        data=data, settings=settings, metrics=metrics, logged=logged, gate=gate, best_iteration=best_iteration,
        device_note=device_note, plots_markdown=plots_markdown, seconds=seconds,
    )
