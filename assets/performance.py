"""`<p>/performance`: how the served versions really did on day T, once T's labels matured."""

import math
from typing import TYPE_CHECKING

import dagster as dg
from pydantic import Field

from assets import pools
from assets.instance import materialization_history
from assets.keys import project_keys
from assets.partitions import daily_partitions
from assets.resilience import failures_classified, permanent, retry_policy
from mining_platform.spec import ProjectSpec
from mining_platform.spec.names import CHALLENGER, CHAMPION
from resources import MongoResource

if TYPE_CHECKING:  # numpy, scipy and matplotlib: loaded by the report's step, not by the code location
    from mining_platform.monitoring.realised import PerformanceDay, Served

METRIC_COLUMNS = [
    dg.TableColumn("source", "string", description="batch: <p>/predictions; logged: the endpoint's entity predictions"),
    dg.TableColumn("role", "string"), dg.TableColumn("version", "string"), dg.TableColumn("rows", "int"),
    dg.TableColumn("metric", "string"), dg.TableColumn("value", "float"),
    dg.TableColumn("low", "float", description="lower bound of the interval (DeLong for AUC, normal for mean losses)"),
    dg.TableColumn("high", "float"),
]


class PerformanceRunConfig(dg.Config):
    max_time_ms: int = Field(default=300_000, ge=1_000, description="Server-side time limit (maxTimeMS) of the "
                             "label aggregation and of each read.")


def deployment_timeline(instance: dg.DagsterInstance, deployment_key: dg.AssetKey) -> list["Served"]:
    """What the endpoint was meant to serve, and since when: every verified deployment, oldest first."""
    from mining_platform.monitoring.realised import Served

    return [Served(since=at, champion=values.get("live_version"),
                   challenger=None if values.get("challenger_version") in (None, "none") else values["challenger_version"])
            for at, values in materialization_history(instance, deployment_key, ("live_version", "challenger_version"))
            if values.get("live_version")]


def _number(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else round(value, 6)


def day_verdict(day: "PerformanceDay", spec: ProjectSpec) -> str:
    """One line: the gate metric of each role, and the challenger's difference."""
    gate = spec.project.model.gate
    parts = []
    for role in (CHAMPION, CHALLENGER):
        group = day.group("batch", role)
        if group is not None:
            value = group.realised.metrics.get(gate.metric)
            shown = "undefined" if value is None else f"{value:.4f}"
            parts.append(f"{role} v{group.version} {gate.metric} {shown} on {group.realised.rows} rows")
    if day.comparison is not None:
        c = day.comparison
        parts.append(f"challenger − champion on {day.compared_on}: {c.estimate:+.4f} [{c.low:+.4f}, {c.high:+.4f}]")
    return "; ".join(parts)


def performance_metadata(day: "PerformanceDay", spec: ProjectSpec) -> dict:
    from mining_platform.monitoring.plots import calibration_plot

    records = []
    for group in day.groups:
        r = group.realised
        for metric, value in sorted(r.metrics.items()):
            interval = r.intervals.get(metric)
            records.append(dg.TableRecord({
                "source": group.source, "role": group.role, "version": group.version, "rows": r.rows,
                "metric": metric, "value": _number(value),
                "low": _number(interval.low) if interval else None, "high": _number(interval.high) if interval else None,
            }))
        if r.expected_calibration_error is not None:
            records.append(dg.TableRecord({"source": group.source, "role": group.role, "version": group.version,
                                           "rows": r.rows, "metric": "ece", "value": _number(r.expected_calibration_error),
                                           "low": None, "high": None}))
    gate_metric = spec.project.model.gate.metric
    hit = day.hit_rate
    metadata = {
        "metrics": dg.MetadataValue.table(records=records, schema=dg.TableSchema(columns=METRIC_COLUMNS)),
        "evidence": dg.MetadataValue.json(day.evidence(spec)),
        "verdict": dg.MetadataValue.text(day_verdict(day, spec)),
        "champion_version": dg.MetadataValue.text(day.models.get(CHAMPION, "none")),
        "challenger_version": dg.MetadataValue.text(day.models.get(CHALLENGER, "none")),
        "labels": dg.MetadataValue.int(day.labelled),
        "logged_predictions": dg.MetadataValue.int(hit.logged),
        "version_hit_rate": (dg.MetadataValue.float(round(hit.rate, 6)) if hit.rate is not None
                             else dg.MetadataValue.text("no logged predictions")),
        "version_misses": dg.MetadataValue.json(hit.misses),
    }
    for role in (CHAMPION, CHALLENGER):
        group = day.group("batch", role)
        value = group.realised.metrics.get(gate_metric) if group else None
        if value is not None:
            metadata[f"{role}_{gate_metric}"] = dg.MetadataValue.float(round(value, 6))
    if day.comparison is not None:
        metadata["difference"] = dg.MetadataValue.json(day.comparison.as_dict())
    curves = {f"{g.source} {g.role} v{g.version}": g.realised.calibration for g in day.groups
              if g.source == "batch" and g.realised.calibration}
    if curves:
        metadata["plot_calibration"] = dg.MetadataValue.md(calibration_plot(curves, partition=day.partition,
                                                                            task=spec.task_type))
    return metadata


def build_performance_asset(spec: ProjectSpec) -> dg.AssetsDefinition:
    project = spec.project
    partitions_def = daily_partitions(project)
    keys = project_keys(spec)
    horizon = spec.label_definition.horizon_days
    gate = project.model.gate

    @dg.asset(
        key=keys.performance,
        partitions_def=partitions_def,
        deps=[
            keys.predictions,
            # The labels of T read the source days after T, as the samples do.
            dg.AssetDep(keys.label_source, partition_mapping=dg.TimeWindowPartitionMapping(
                start_offset=1, end_offset=horizon, allow_nonexistent_upstream_partitions=True)),
        ],
        backfill_policy=dg.BackfillPolicy.multi_run(max_partitions_per_run=1),
        retry_policy=retry_policy(),
        pool=pools.MONGODB,
        group_name="monitoring",
        kinds={"mongodb", "scipy"},
        description=f"Realised performance of day T, once its {horizon}-day label window has elapsed in the source: "
        f"T's predictions (batch, and the endpoint's logged entity predictions) joined with the labels "
        f"`labels/{spec.label}.yaml` gives in the database, per version and role: "
        + spec.task_type.realised_metrics + f"; the challenger's difference from the champion on the same rows; and the version hit rate of the "
        f"predictions logged during T. `{project.name}_performance_sensor` decides on {project.performance.min_days} "
        f"days of it (gate metric {gate.metric}).",
    )
    def performance(context: dg.AssetExecutionContext, config: PerformanceRunConfig,
                    mongo: MongoResource) -> dg.MaterializeResult:
        from mining_platform.monitoring.realised import PerformanceInputMissing, evaluate_performance

        with failures_classified():
            partition = context.partition_key
            as_of = partitions_def.time_window_for_partition_key(partition).end
            try:
                day = evaluate_performance(
                    mongo.project_db(spec.name), mongo.analytics_db(), spec, partition=partition, as_of=as_of,
                    timeline=deployment_timeline(context.instance, keys.deployment),
                    confidence=project.performance.confidence, max_time_ms=config.max_time_ms)
            except PerformanceInputMissing as exc:
                raise permanent(str(exc)) from None
            context.log.info(f"{partition}: {day_verdict(day, spec)}")
            return dg.MaterializeResult(metadata=performance_metadata(day, spec))

    return performance
