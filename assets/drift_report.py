"""`<p>/drift_report`: one day's committed features (and logged scores) against the champion's reference."""

from typing import TYPE_CHECKING

import dagster as dg

from assets import pools
from assets.keys import project_keys
from assets.partitions import daily_partitions
from assets.resilience import failures_classified, permanent, retry_policy
from mining_platform.monitoring.decision import drift_summary
from mining_platform.spec import ProjectSpec
from resources import MlflowResource, MongoResource

if TYPE_CHECKING:  # numpy, scipy, matplotlib and MLflow: loaded by the report's step, not by the code location
    from mining_platform.monitoring.distributions import Comparison
    from mining_platform.monitoring.report import DriftReport
    from mining_platform.registry.reference import ModelReference

STATISTICS_COLUMNS = [
    dg.TableColumn("feature", "string"), dg.TableColumn("kind", "string"), dg.TableColumn("psi", "float"),
    dg.TableColumn("drifted", "bool"), dg.TableColumn("ks_statistic", "float"), dg.TableColumn("ks_pvalue", "float"),
    dg.TableColumn("js_distance", "float"), dg.TableColumn("mean", "float"), dg.TableColumn("reference_mean", "float"),
    dg.TableColumn("missing_rate", "float"), dg.TableColumn("reference_missing_rate", "float"),
]


def _round(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(value, digits)


def _record(comparison: "Comparison", drifted: bool) -> dg.TableRecord:
    return dg.TableRecord({
        "feature": comparison.name, "kind": comparison.kind.value, "psi": _round(comparison.psi),
        "drifted": drifted, "ks_statistic": _round(comparison.ks_statistic), "ks_pvalue": _round(comparison.ks_pvalue, 6),
        "js_distance": _round(comparison.js_distance), "mean": _round(comparison.mean),
        "reference_mean": _round(comparison.reference_mean), "missing_rate": _round(comparison.missing_rate),
        "reference_missing_rate": _round(comparison.reference_missing_rate),
    })


def decision_text(report: "DriftReport") -> str:
    verdict = "retrain" if report.retrain else "no retrain"
    return (f"{verdict}: {drift_summary(report.drifted, len(report.features), report.drift)}; "
            f"{report.drift.min_drifted_features} needed")


def report_metadata(report: "DriftReport", reference: "ModelReference") -> dict:
    from mining_platform.monitoring.plots import drift_histogram

    drifted = report.drifted
    metadata = {
        "model_name": dg.MetadataValue.text(report.champion.name),
        "champion_version": dg.MetadataValue.text(report.champion.version),
        "champion_run_id": dg.MetadataValue.text(report.champion.run_id),
        "rows": dg.MetadataValue.int(report.rows),
        "psi": dg.MetadataValue.json(report.psi),
        "drifted_features": dg.MetadataValue.json(drifted),
        "drifted_count": dg.MetadataValue.int(len(drifted)),
        "psi_threshold": dg.MetadataValue.float(report.drift.psi_threshold),
        "min_drifted_features": dg.MetadataValue.int(report.drift.min_drifted_features),
        "retrain_needed": dg.MetadataValue.bool(report.retrain),
        "decision": dg.MetadataValue.text(decision_text(report)),
        "feature_runs": dg.MetadataValue.json(report.feature_runs),
        "reference_partitions": dg.MetadataValue.text(
            f"{reference.sample_partitions[0]} .. {reference.sample_partitions[-1]}"
            if reference.sample_partitions else "unknown"),
        "statistics": dg.MetadataValue.table(
            records=[_record(c, c.name in drifted) for c in report.features],
            schema=dg.TableSchema(columns=STATISTICS_COLUMNS),
        ),
        "scores_logged": dg.MetadataValue.int(report.scores_logged),
    }
    if report.scores is not None:
        metadata["score_psi"] = dg.MetadataValue.float(round(report.scores.psi, 4))
        if report.scores.ks_statistic is not None:  # numeric scores; a classifier's predicted class: Jensen–Shannon
            metadata["score_ks_statistic"] = dg.MetadataValue.float(round(report.scores.ks_statistic, 4))
            metadata["score_ks_pvalue"] = dg.MetadataValue.float(round(report.scores.ks_pvalue, 6))
        if report.scores.js_distance is not None:
            metadata["score_js_distance"] = dg.MetadataValue.float(round(report.scores.js_distance, 4))
        metadata["plot_score"] = dg.MetadataValue.md(drift_histogram(
            report.scores, reference.scores, partition=report.partition, version=report.champion.version))
    for comparison in report.features:
        if comparison.name in drifted:
            metadata[f"plot_{comparison.name}"] = dg.MetadataValue.md(drift_histogram(
                comparison, reference.features[comparison.name], partition=report.partition,
                version=report.champion.version))
    return metadata


def build_drift_report_asset(spec: ProjectSpec) -> dg.AssetsDefinition:
    project = spec.project
    partitions_def = daily_partitions(project)
    drift = project.drift
    keys = project_keys(spec)

    @dg.asset(
        key=keys.drift_report,
        partitions_def=partitions_def,
        deps=keys.feature_keys,
        # Each day's report is its own materialisation, with its own table and plots.
        backfill_policy=dg.BackfillPolicy.multi_run(max_partitions_per_run=1),
        retry_policy=retry_policy(),
        pool=pools.MONGODB,
        group_name="monitoring",
        kinds={"mongodb", "mlflow", "scipy"},
        description=f"How far day T's committed features are from what `{project.model.name}@champion` learned "
        f"from (the reference logged with the version): PSI per feature, Kolmogorov–Smirnov for numeric and "
        f"Jensen–Shannon for boolean features, and the same for the scores `prediction_log` holds for T. A feature "
        f"drifts when its PSI exceeds {drift.psi_threshold}; with {drift.min_drifted_features} or more, "
        f"`{project.name}_drift_sensor` asks for a retrain. The metadata holds the table of statistics and a "
        "histogram per drifted feature.",
    )
    def drift_report(context: dg.AssetExecutionContext, mongo: MongoResource,
                     mlflow: MlflowResource) -> dg.MaterializeResult:
        from mining_platform.monitoring.report import DriftInputMissing, evaluate_day
        from mining_platform.registry.aliases import champion
        from mining_platform.registry.reference import ReferenceUnavailable, load_reference

        with failures_classified():
            partition = context.partition_key
            as_of = partitions_def.time_window_for_partition_key(partition).end
            model = champion(mlflow.client(), project.model.name)
            if model is None:
                raise permanent(f"{project.model.name} has no champion to compare {partition} with: deploy a "
                                f"version first ({project.name}/deployment)")
            try:
                reference = load_reference(mlflow.tracking_uri, model)
                report = evaluate_day(mongo.project_db(spec.name), spec, model, reference, partition=partition, as_of=as_of)
            except (ReferenceUnavailable, DriftInputMissing) as exc:
                raise permanent(str(exc)) from None
            context.log.info(f"{partition} against {model.name} v{model.version}: {decision_text(report)}")
            return dg.MaterializeResult(metadata=report_metadata(report, reference))

    return drift_report
