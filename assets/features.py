"""`<p>/features/<name>`: one daily-partitioned asset per feature definition, computed in MongoDB."""

import datetime as dt

import dagster as dg
from pydantic import Field

from assets import pools
from assets.feature_metadata import check_name, check_results, column_schema, owners, run_metadata
from assets.instance import dagster_run_finished, partitions_with_as_of
from assets.keys import demo_key, feature_key, source_key, tiles_key
from assets.partitions import daily_partitions
from assets.resilience import failures_classified, retry_policy, unpublished
from mining_platform.features.pipeline import run_feature_pipeline
from mining_platform.features.windowed import run_tiles, run_windows
from mining_platform.spec import names
from mining_platform.spec.definition import FeatureDefinition
from mining_platform.spec.project import ProjectConfig
from mining_platform.spec.windowed import WindowedDefinition
from resources import MongoResource


def follows_source_days(project: ProjectConfig) -> dg.AutomationCondition:
    """When automation computes a tile or feature day by itself.

    A day follows what it reads: when a run materialises an upstream day (the demo generator, tiles for a
    window), and when an observation records a new data version for its source day (its events changed), that
    day is recomputed; a late or replayed day too, not only the latest. An observed change counts only within
    the project's `automation.follow_days` (the latest days of its partitions): older history is computed when
    the user backfills it, so a first observation of a year of events launches nothing for the whole year.
    Never while the source day was never observed, nor while this asset is already running for it.
    """
    sources = dg.AssetSelection.assets(*(source_key(project.name, key) for key in project.sources))
    observed = dg.AutomationCondition.any_deps_updated().allow(sources)
    follow = project.automation.follow_days
    if follow != "all":
        observed = observed & dg.AutomationCondition.in_latest_time_window(dt.timedelta(days=follow))
    ran = dg.AutomationCondition.any_deps_updated().ignore(sources)
    days = "every day" if follow == "all" else f"the last {follow} days"
    return (
        (ran | observed).since_last_handled()
        & ~dg.AutomationCondition.any_deps_missing()
        & ~dg.AutomationCondition.any_deps_in_progress()
        & ~dg.AutomationCondition.in_progress()
    ).with_label(f"when what it reads changes (observed sources: {days})")


class FeatureRunConfig(dg.Config):
    max_time_ms: int | None = Field(
        default=None,
        ge=1_000,
        description="Server-side time limit (maxTimeMS) of each partition's aggregation and contract check; "
        "unset: the definition's limits.max_time_ms (default 300000, five minutes).",
    )


def _daily_feature_asset(project: ProjectConfig, definition: FeatureDefinition) -> dict:
    """What a feature asset and a windowed definition's tiles share: daily partitions, automation, versioning."""
    return dict(
        partitions_def=daily_partitions(project),
        # A day is one aggregation; one run per day would spend a backfill starting processes.
        backfill_policy=dg.BackfillPolicy.single_run(),
        retry_policy=retry_policy(),
        pool=pools.MONGODB,
        automation_condition=follows_source_days(project),
        code_version=definition.content_hash,
        group_name="features",
        kinds={"mongodb"},
        owners=owners(definition.owner),
    )


def source_deps(project: ProjectConfig, source: str) -> list[dg.AssetKey]:
    """What reading source day T depends on: the observed source, and the demo generator when the project's demo
    writes that source. The generator is not upstream of the observed source (nothing is: the platform never
    writes a source), so without it a run selecting both the demo days and what reads them would read the days
    before they were written."""
    deps = [source_key(project.name, source)]
    if project.demo is not None and project.demo.source == source:
        deps.append(demo_key(project.name, source))
    return deps


def build_feature_asset(project: ProjectConfig, definition: FeatureDefinition) -> dg.AssetsDefinition:
    partitions_def = daily_partitions(project)
    key = feature_key(project.name, definition.name)
    source = project.sources[definition.source]
    contract_lines = "\n".join(
        f"- `{name}`: {c.type.value}"
        + (f", min {c.min}" if c.min is not None else "") + (f", max {c.max}" if c.max is not None else "")
        + f", null rate ≤ {c.max_null_rate}" + (f" — {c.description}" if c.description else "")
        for name, c in definition.features.items()
    )

    windowed = isinstance(definition, WindowedDefinition)
    if windowed:
        # Window T reads the tiles of days T-w+1 .. T: replacing an older source day re-tiles that day, and
        # exactly the windows holding it become stale.
        deps = [dg.AssetDep(tiles_key(project.name, definition.name), partition_mapping=dg.TimeWindowPartitionMapping(
            start_offset=-(definition.window_days - 1), end_offset=0, allow_nonexistent_upstream_partitions=True))]
        computed = (f"combined in MongoDB from the daily tiles of `{definition.tiles_target}` (each source day "
                    f"aggregated once) over windows of {', '.join(str(w) for w in definition.windows)} days")
    else:
        # Partition T depends on source day T, the day that completes its window. The
        # rolling-window mapping (T-window+1 .. T) is truer, but Dagster then widens a
        # backfill by window_days - 1 partitions past the data. The price: replacing an
        # older source day does not flag the later windows holding it stale.
        deps = source_deps(project, definition.source)
        computed = f"computed in MongoDB from source `{definition.source}` (`{source.collection}`) over " \
                   f"{definition.window_days} days"

    @dg.asset(
        key=key,
        deps=deps,
        **_daily_feature_asset(project, definition),
        description=f"{definition.description}\n\nVersion {definition.version} of `features/{definition.name}.yaml` "
        f"({definition.kind}), {computed}, into `{definition.target}`; a partition's as_of is the end of its day (UTC)."
        f"\n\nContract:\n{contract_lines}",
        metadata={
            "pipeline_version": definition.version,
            "pipeline_hash": definition.content_hash,
            "kind": definition.kind,
            "source": definition.source,
            "source_collection": source.collection,
            "target_collection": definition.target,
            "window_days": definition.window_days,
            # The asset catalog is the feature catalog: every feature with its type and description.
            "dagster/column_schema": column_schema(definition),
        },
        check_specs=[
            dg.AssetCheckSpec(
                name=check_name(feature),
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
            common = dict(db=mongo.project_db(project.name), analytics=mongo.analytics_project_db(project.name),
                          project=project, definition=definition, partitions=partitions,
                          dagster_run_id=context.run.run_id,
                          max_time_ms=config.max_time_ms or definition.bounds.max_time_ms, log=context.log,
                          dagster_run_finished=dagster_run_finished(context.instance))
            if windowed:
                report = run_windows(**common)
            else:
                report = run_feature_pipeline(sources=mongo.analytics_db(), **common)
            metadata = run_metadata(report, mongo.project_db(project.name).name)
            checks = check_results(report)
            if not report.failed:
                yield dg.MaterializeResult(metadata=metadata, check_results=checks)
                return
            # What did publish is recorded, per partition, before the checks and the failure for the rest.
            yield from unpublished(context, report.outcomes, what=f"partitions of {definition.name}",
                                   keeps="readers keep the previous publication", metadata=metadata,
                                   recorded=lambda o: {"documents_written": o.documents_written, "run_id": o.run_id},
                                   then=checks)

    return feature_asset


def build_tiles_asset(project: ProjectConfig, definition: WindowedDefinition) -> dg.AssetsDefinition:
    """`<p>/tiles/<name>`: each source day of a windowed definition aggregated once into per-entity tiles."""
    partitions_def = daily_partitions(project)
    source = project.sources[definition.source]

    @dg.asset(
        key=tiles_key(project.name, definition.name),
        deps=source_deps(project, definition.source),  # tile T is source day T
        **_daily_feature_asset(project, definition),
        description=f"Daily tiles of `features/{definition.name}.yaml` (version {definition.version}): each day of "
        f"source `{definition.source}` (`{source.collection}`) aggregated once, per entity, into partial aggregates in "
        f"`{definition.tiles_target}`; the windows of `{names.shown(names.feature_asset(project.name, definition.name))}`"
        " are combined from them.",
        metadata={"tiles_collection": definition.tiles_target, "source": definition.source,
                  "source_collection": source.collection, "pipeline_version": definition.version},
    )
    def tiles_asset(context: dg.AssetExecutionContext, config: FeatureRunConfig, mongo: MongoResource):
        with failures_classified():
            report = run_tiles(
                db=mongo.project_db(project.name), analytics=mongo.analytics_project_db(project.name),
                sources=mongo.analytics_db(), project=project, definition=definition,
                partitions=partitions_with_as_of(context, partitions_def), dagster_run_id=context.run.run_id,
                max_time_ms=config.max_time_ms or definition.bounds.max_time_ms, log=context.log,
                dagster_run_finished=dagster_run_finished(context.instance))
            committed = [o for o in report.outcomes if o.committed]
            metadata = {
                "tiles_written": dg.MetadataValue.int(sum(o.documents_written for o in committed)),
                "partitions_committed": dg.MetadataValue.int(len(committed)),
                "bytes_returned": dg.MetadataValue.int(sum(o.bytes_returned for o in report.outcomes)),
                "collection": dg.MetadataValue.text(f"{mongo.project_db(project.name).name}.{definition.tiles_target}"),
            }
            if not report.failed:
                yield dg.MaterializeResult(metadata=metadata)
                return
            yield from unpublished(context, report.outcomes, what=f"tile days of {definition.name}",
                              keeps="the windows keep the previous tiles", metadata=metadata,
                              recorded=lambda o: {"tiles_written": o.documents_written, "run_id": o.run_id})

    return tiles_asset


def build_feature_assets(project: ProjectConfig, definitions: list[FeatureDefinition]) -> list[dg.AssetsDefinition]:
    """Per definition its feature asset; a windowed definition also its tiles."""
    assets = []
    for definition in definitions:
        if isinstance(definition, WindowedDefinition):
            assets.append(build_tiles_asset(project, definition))
        assets.append(build_feature_asset(project, definition))
    return assets
