"""`<p>/sources/<key>`: the collections a project observes and never writes, as observable source assets.

An observation computes, in the database, each day's event count and newest event
time, and records them as that day's data version. Only the days whose version changed
are recorded, so the automation sensor recomputes exactly the feature days whose
source day changed, however the events got there (a feed, `mining-platform import`,
the demo generator).
"""

import datetime as dt

import dagster as dg

from assets.instance import observed_data_versions
from assets.keys import source_key
from assets.partitions import daily_partitions
from assets.resilience import failures_classified
from mining_platform.sources.observe import changed_versions, complete_through, day_counts, shown
from mining_platform.spec.names import DEMO_SUFFIX
from mining_platform.spec.project import ProjectConfig
from resources import MongoResource


def observe_source(context, mongo: MongoResource, project: ProjectConfig, key: str,
                   partitions_def: dg.TimeWindowPartitionsDefinition) -> dict[str, str]:
    """Every day's data version, computed in MongoDB: the days (partition keys) whose version changed since the
    last observation, with their new version. What the observation job runs (the sensor reads fewer days)."""
    source = project.sources[key]
    days = partitions_def.get_partition_keys(dynamic_partitions_store=context.instance)
    end = dt.datetime.now(dt.timezone.utc).date() + dt.timedelta(days=1)
    counts = day_counts(mongo.analytics_db(), source, start=project.start_date, end=end)
    changed = changed_versions(counts, observed_data_versions(context.instance, source_key(project.name, key)), days)
    newest = max((c.newest for c in counts.values()), default=None)
    context.log.info(
        f"{shown(source, mongo.analytics_db())}: {sum(c.events for c in counts.values())} events on {len(counts)} days "
        f"since {project.start_date}; newest {newest.isoformat() if newest else '-'} (complete through "
        f"{complete_through(newest, source.lateness_days) or '-'}); {len(changed)} days changed since the last "
        "observation" + (f": {', '.join(sorted(changed)[:10])}{' …' if len(changed) > 10 else ''}" if changed else ""))
    return changed


def build_source_asset(project: ProjectConfig, key: str) -> dg.SourceAsset:
    source = project.sources[key]
    partitions_def = daily_partitions(project)
    database = (f"<MINING_MONGO_DB>_{source.demo_of}{DEMO_SUFFIX}" if source.demo_of
                else source.database or "<MINING_MONGO_DB>")

    @dg.observable_source_asset(
        key=source_key(project.name, key),
        partitions_def=partitions_def,
        group_name="sources",
        description=f"Events in `{database}.{source.collection}`, observed and never "
        f"written by the platform. Each day's data version is its event count and newest `{source.timestamp}`, "
        "computed in MongoDB; feature days follow a day whose version changed. Samples read this source's watermark "
        f"(its newest event) directly: a day is complete once it holds events {source.lateness_days} day(s) past "
        "the day's end.",
        metadata={"collection": source.collection, "database": database,
                  "timestamp_field": source.timestamp, "lateness_days": source.lateness_days},
    )
    def source_asset(context, mongo: MongoResource) -> dg.DataVersionsByPartition:
        with failures_classified():
            changed = observe_source(context, mongo, project, key, partitions_def)
        return dg.DataVersionsByPartition({day: dg.DataVersion(version) for day, version in changed.items()})

    return source_asset


def build_source_assets(project: ProjectConfig) -> list[dg.SourceAsset]:
    return [build_source_asset(project, key) for key in project.sources]
