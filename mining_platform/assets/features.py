"""`<p>/features/<name>`: one daily-partitioned asset per feature definition, computed in MongoDB."""

import dagster as dg
from pydantic import Field

from mining_platform.features.pipeline import ExecutionReport, run_feature_pipeline
from mining_platform.instance import dagster_run_finished, partitions_with_as_of
from mining_platform.keys import feature_key, source_key
from mining_platform.partitions import daily_partitions
from mining_platform.resilience import failures_classified, retry_policy
from mining_platform.resources import MongoResource
from mining_platform.spec.definition import FeatureDefinition
from mining_platform.spec.project import ProjectConfig

# A feature day follows its source day: whenever an observation records a new data version
# for a source day (its events changed), that day's features are recomputed. Unlike
# AutomationCondition.eager(), not only the latest day: a late or replayed day is
# recomputed too. Never while the source day was never observed, nor when this asset is
# already running for it.
ON_NEW_RAW_DAY = (
    dg.AutomationCondition.any_deps_updated().since_last_handled()
    & ~dg.AutomationCondition.any_deps_missing()
    & ~dg.AutomationCondition.any_deps_in_progress()
    & ~dg.AutomationCondition.in_progress()
).with_label("when its source day changes")


class FeatureRunConfig(dg.Config):
    max_time_ms: int | None = Field(
        default=None,
        ge=1_000,
        description="Server-side time limit (maxTimeMS) of each partition's aggregation and contract check; "
        "unset: the definition's limits.max_time_ms (default 300000, five minutes).",
    )


def _check_name(feature: str) -> str:
    return f"{feature}_contract"


def _owners(owner: str) -> list[str]:
    return [owner if "@" in owner else f"team:{owner}"]


def _partition_table(report: ExecutionReport) -> dg.TableMetadataValue:
    return dg.MetadataValue.table(
        records=[
            dg.TableRecord({
                "partition": o.partition,
                "status": "committed" if o.committed else "FAILED",
                "documents": o.documents_written,
                "seconds": o.duration_seconds,
                "bytes_returned": o.bytes_returned,
                "run_id": o.run_id,
                "error": o.error or "",
            })
            for o in report.outcomes
        ],
        schema=dg.TableSchema(columns=[
            dg.TableColumn("partition", "string"), dg.TableColumn("status", "string"),
            dg.TableColumn("documents", "int"), dg.TableColumn("seconds", "float"),
            dg.TableColumn("bytes_returned", "int"), dg.TableColumn("run_id", "string"),
            dg.TableColumn("error", "string"),
        ]),
    )


def _metadata(report: ExecutionReport, database: str) -> dict:
    definition = report.definition
    return {
        "documents_written": dg.MetadataValue.int(sum(o.documents_written for o in report.outcomes if o.committed)),
        "partitions_committed": dg.MetadataValue.int(sum(o.committed for o in report.outcomes)),
        "duration_seconds": dg.MetadataValue.float(round(sum(o.duration_seconds for o in report.outcomes), 3)),
        "bytes_returned": dg.MetadataValue.int(sum(o.bytes_returned for o in report.outcomes)),
        "pipeline_version": dg.MetadataValue.int(definition.version),
        "pipeline_hash": dg.MetadataValue.text(definition.content_hash),
        "first_match_uses_index": dg.MetadataValue.bool(report.first_match_index is not None),
        "first_match_plan": dg.MetadataValue.text(report.first_match_plan),
        "collection": dg.MetadataValue.text(f"{database}.{definition.target}"),
        "partitions": _partition_table(report),
        "abandoned_runs_failed": dg.MetadataValue.json(report.abandoned_runs),
    }


def _check_results(report: ExecutionReport) -> list[dg.AssetCheckResult]:
    """One result per contract, over every partition whose documents were checked."""
    checked = [o for o in report.outcomes if o.contracts is not None]
    if not checked:
        return []
    results = []
    for feature in report.definition.features:
        per_partition = {o.partition: next(c for c in o.contracts.checks if c.feature == feature) for o in checked}
        failing = {key: check.problems for key, check in per_partition.items() if not check.passed}
        documents = sum(c.documents for c in per_partition.values())
        nulls = sum(c.nulls for c in per_partition.values())
        numeric = [v for c in per_partition.values() for v in (c.observed_min, c.observed_max) if isinstance(v, int | float)]
        results.append(dg.AssetCheckResult(
            check_name=_check_name(feature),
            passed=not failing,
            severity=dg.AssetCheckSeverity.ERROR,
            metadata={
                "partitions_checked": dg.MetadataValue.int(len(per_partition)),
                "documents": dg.MetadataValue.int(documents),
                "null_rate": dg.MetadataValue.float(round(nulls / documents, 6) if documents else 0.0),
                "observed_min": dg.MetadataValue.float(float(min(numeric))) if numeric else dg.MetadataValue.null(),
                "observed_max": dg.MetadataValue.float(float(max(numeric))) if numeric else dg.MetadataValue.null(),
                "violations": dg.MetadataValue.json(failing),
            },
        ))
    return results


def build_feature_asset(project: ProjectConfig, definition: FeatureDefinition) -> dg.AssetsDefinition:
    partitions_def = daily_partitions(project)
    key = feature_key(project.name, definition.name)
    upstream = source_key(project.name, definition.source)
    source = project.sources[definition.source]
    contract_lines = "\n".join(
        f"- `{name}`: {c.type.value}"
        + (f", min {c.min}" if c.min is not None else "") + (f", max {c.max}" if c.max is not None else "")
        + f", null rate ≤ {c.max_null_rate}" + (f" — {c.description}" if c.description else "")
        for name, c in definition.features.items()
    )

    @dg.asset(
        key=key,
        partitions_def=partitions_def,
        # Partition T depends on source day T, the day that completes its window. The
        # rolling-window mapping (T-window+1 .. T) is truer, but Dagster then widens a
        # backfill by window_days - 1 partitions past the data. The price: replacing an
        # older source day does not flag the later windows holding it stale.
        deps=[upstream],
        # A day is one aggregation; one run per day would spend a backfill starting processes.
        backfill_policy=dg.BackfillPolicy.single_run(),
        retry_policy=retry_policy(),
        automation_condition=ON_NEW_RAW_DAY,
        code_version=definition.content_hash,
        group_name="features",
        kinds={"mongodb"},
        owners=_owners(definition.owner),
        description=f"{definition.description}\n\nVersion {definition.version} of `features/{definition.name}.yaml`, "
        f"computed in MongoDB from source `{definition.source}` (`{source.collection}`) over {definition.window_days} "
        f"days into `{definition.target}`; a partition's as_of is the end of its day (UTC). It follows that day of the "
        f"source: after older source days change, rerun the feature partitions whose window holds them."
        f"\n\nContract:\n{contract_lines}",
        metadata={
            "pipeline_version": definition.version,
            "source": definition.source,
            "source_collection": source.collection,
            "target_collection": definition.target,
            "window_days": definition.window_days,
        },
        check_specs=[
            dg.AssetCheckSpec(
                name=_check_name(feature),
                asset=key,
                description=f"`{feature}` satisfies its contract on every committed document of the run.",
                blocking=True,
            )
            for feature in definition.features
        ],
    )
    def feature_asset(context: dg.AssetExecutionContext, config: FeatureRunConfig, mongo: MongoResource):
        with failures_classified():
            partitions = partitions_with_as_of(context, partitions_def)
            report = run_feature_pipeline(
                db=mongo.project_db(project.name), analytics=mongo.analytics_project_db(project.name),
                sources=mongo.analytics_db(), project=project, definition=definition, partitions=partitions,
                dagster_run_id=context.run.run_id, max_time_ms=config.max_time_ms or definition.bounds.max_time_ms,
                log=context.log,
                dagster_run_finished=dagster_run_finished(context.instance),
            )
            metadata = _metadata(report, mongo.project_db(project.name).name)
            checks = _check_results(report)
            if not report.failed:
                yield dg.MaterializeResult(metadata=metadata, check_results=checks)
                return
            # Record what did publish, per partition, before failing the step for the rest.
            for outcome in report.outcomes:
                if outcome.committed:
                    context.log_event(dg.AssetMaterialization(
                        asset_key=context.asset_key, partition=outcome.partition,
                        metadata={"documents_written": outcome.documents_written, "run_id": outcome.run_id},
                    ))
            yield from checks
            failures = "\n".join(f"- {o.partition}: {o.error}" for o in report.failed)
            raise dg.Failure(
                description=f"{len(report.failed)} of {len(report.outcomes)} partitions of {definition.name} were not "
                f"published (readers keep the previous publication):\n{failures}",
                metadata=metadata,
                # Retried only when every failure was an outage; a refused or broken partition fails for good.
                allow_retries=all(o.transient for o in report.failed),
            )

    return feature_asset


def build_feature_assets(project: ProjectConfig, definitions: list[FeatureDefinition]) -> list[dg.AssetsDefinition]:
    return [build_feature_asset(project, d) for d in definitions]
