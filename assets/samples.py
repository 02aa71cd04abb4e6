"""`<p>/samples`: point-in-time training rows per as_of, joined and labelled in MongoDB."""

import dagster as dg
from pydantic import Field

from assets import pools
from assets.instance import dagster_run_finished, partitions_with_as_of
from assets.keys import feature_key, project_keys
from assets.partitions import daily_partitions
from assets.resilience import failures_classified, retry_policy, unpublished
from mining_platform.samples.build import SampleOutcome, build_sample_partitions
from mining_platform.samples.pipeline import SamplesPipeline
from mining_platform.spec import ProjectSpec
from mining_platform.spec.names import SAMPLE_MARKERS
from resources import MongoResource


class SamplesRunConfig(dg.Config):
    max_time_ms: int | None = Field(
        default=None, ge=1_000, description="Server-side time limit (maxTimeMS) of each partition's label and "
        "join aggregations; unset: the label definition's limits.max_time_ms (default 300000, five minutes)."
    )


def _partition_table(outcomes: list[SampleOutcome]) -> dg.TableMetadataValue:
    return dg.MetadataValue.table(
        records=[
            dg.TableRecord({
                "partition": o.partition,
                "status": "committed" if o.committed else "REFUSED" if o.run_id is None else "FAILED",
                "rows": o.rows,
                "positives": o.positives,
                "label_mean": round(o.label_mean, 6) if o.label_mean is not None else 0.0,
                "seconds": o.duration_seconds,
                "run_id": o.run_id or "",
                "error": o.error or "",
            })
            for o in outcomes
        ],
        schema=dg.TableSchema(columns=[
            dg.TableColumn("partition", "string"), dg.TableColumn("status", "string"),
            dg.TableColumn("rows", "int"), dg.TableColumn("positives", "int"),
            dg.TableColumn("label_mean", "float"), dg.TableColumn("seconds", "float"),
            dg.TableColumn("run_id", "string"), dg.TableColumn("error", "string"),
        ]),
    )


def sample_schema(spec: ProjectSpec) -> dg.TableSchema:
    """A sample row's columns: the entity, every feature (with the feature set and version it comes from), the label."""
    columns = [dg.TableColumn(name=spec.entity, type="id", description="the entity")]
    for definition in spec.definitions:
        columns += [dg.TableColumn(name=feature, type=contract.type.value,
                                   description=f"from {definition.name} v{definition.version}")
                    for feature, contract in definition.features.items()]
    label = spec.label_definition
    columns.append(dg.TableColumn(name=spec.label, type=spec.task_type.label_type,
                                  description=f"label {label.name} v{label.version}, {label.horizon_days} days ahead"))
    return dg.TableSchema(columns=columns)


def sample_lineage(spec: ProjectSpec) -> dg.TableColumnLineage:
    """Each feature column of the samples comes from the same column of its feature set's asset."""
    return dg.TableColumnLineage(deps_by_column={
        feature: [dg.TableColumnDep(asset_key=feature_key(spec.name, definition.name), column_name=feature)]
        for definition in spec.definitions for feature in definition.features
    })


def build_samples_asset(spec: ProjectSpec) -> dg.AssetsDefinition:
    project = spec.project
    pipeline = SamplesPipeline(spec)
    partitions_def = daily_partitions(project)
    keys = project_keys(spec)
    label = spec.label_definition
    horizon = label.horizon_days
    default = ("they are not samples" if label.default is None else f"they get {label.default}")

    @dg.asset(
        key=keys.samples,
        partitions_def=partitions_def,
        deps=[
            *keys.feature_keys,
            # The label reads the source days after T: (T, T + horizon].
            dg.AssetDep(keys.label_source, partition_mapping=dg.TimeWindowPartitionMapping(
                start_offset=1, end_offset=horizon, allow_nonexistent_upstream_partitions=True,
            )),
        ],
        backfill_policy=dg.BackfillPolicy.single_run(),
        retry_policy=retry_policy(),
        pool=pools.MONGODB,
        code_version=pipeline.content_hash,
        group_name="training",
        kinds={"mongodb"},
        description=f"Training rows of `{project.name}`, one partition per as_of T (the end of day T, UTC): every "
        f"entity's committed features at T from {', '.join(f'`{d.name}` v{d.version}' for d in spec.definitions)}, "
        f"and the {project.model.task} label `{label.name}` (v{label.version} of `labels/{label.name}.yaml`: "
        f"{label.description.strip()}) from source `{label.source}` over the {horizon} days after T; entities with "
        f"features but no label document: {default}. A partition is refused until the source's newest event shows "
        f"its whole label window has elapsed. Stored in `{pipeline.target}`, published per partition through "
        f"`{SAMPLE_MARKERS}`.",
        metadata={"collection": pipeline.target, "label": label.name, "label_version": label.version,
                  "task": project.model.task, "horizon_days": horizon,
                  "feature_versions": {d.name: d.version for d in spec.definitions},
                  "dagster/column_schema": sample_schema(spec),
                  "dagster/column_lineage": sample_lineage(spec)},
    )
    def samples(context: dg.AssetExecutionContext, config: SamplesRunConfig, mongo: MongoResource):
        with failures_classified():
            partitions = partitions_with_as_of(context, partitions_def)
            outcomes = build_sample_partitions(
                db=mongo.project_db(spec.name), analytics=mongo.analytics_project_db(spec.name),
                sources=mongo.analytics_db(), spec=spec, partitions=partitions,
                dagster_run_id=context.run.run_id,
                max_time_ms=config.max_time_ms or spec.label_definition.bounds.max_time_ms, log=context.log,
                dagster_run_finished=dagster_run_finished(context.instance),
            )
            committed = [o for o in outcomes if o.committed]
            rows = sum(o.rows for o in committed)
            label_sum = sum((o.label_mean or 0.0) * o.rows for o in committed)
            metadata = {
                "rows_written": dg.MetadataValue.int(rows),
                spec.task_type.label_summary:
                    dg.MetadataValue.float(round(label_sum / rows, 4) if rows else 0.0),
                "partitions_committed": dg.MetadataValue.int(len(committed)),
                "bytes_returned": dg.MetadataValue.int(sum(o.bytes_returned for o in outcomes)),
                "feature_versions": dg.MetadataValue.json(
                    {d.name: {"version": d.version, "hash": d.content_hash} for d in spec.definitions}
                ),
                "collection": dg.MetadataValue.text(f"{mongo.project_db(spec.name).name}.{pipeline.target}"),
                "partitions": _partition_table(outcomes),
            }
            if all(o.committed for o in outcomes):
                yield dg.MaterializeResult(metadata=metadata)
                return
            yield from unpublished(context, outcomes, what="sample partitions", keeps="readers keep the previous "
                                   "publication", metadata=metadata, recorded=lambda o: {
                                       "rows": o.rows, "positives": o.positives, "run_id": o.run_id})

    return samples
