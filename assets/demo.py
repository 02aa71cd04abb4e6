"""`<p>/demo/<source>`: the opt-in demo generator; one day of seeded behaviour events per daily partition.

It exists only for a project with a `demo:` block, writes only into the source that
block names, and refuses a collection it did not create (see demo.store). After
writing, it records the new data versions of the days it wrote on the source's
observed asset, exactly as an observation would, so feature days follow at once.
"""

import datetime as dt
import time

import dagster as dg
from pydantic import Field

from assets import pools
from assets.keys import demo_key, source_key
from assets.partitions import daily_partitions
from assets.resilience import failures_classified, retry_policy
from mining_platform.sources.observe import day_counts, shown, source_database
from mining_platform.spec.project import ProjectConfig
from mining_platform.spec.tags import DATA_VERSION_TAG
from resources import MongoResource

# The tag under which Dagster stores an observation's data version (what `DataVersionsByPartition` writes).


class DemoEventsConfig(dg.Config):
    drift: float = Field(
        default=0.0,
        ge=0.0,
        le=1.0,
        description="Shift the behaviour of the run's days: 0 = none, 1 = strong (fewer "
        "sessions, clicks pulled to new modules, bigger purchases). For exercising the drift loop.",
    )


def build_demo_asset(project: ProjectConfig) -> dg.AssetsDefinition:
    demo = project.demo
    assert demo is not None
    source = project.sources[demo.source]
    observed = source_key(project.name, demo.source)

    @dg.asset(
        key=demo_key(project.name, demo.source),
        partitions_def=daily_partitions(project),
        # A day takes seconds; one run per day would spend most of a backfill starting runs.
        backfill_policy=dg.BackfillPolicy.single_run(),
        retry_policy=retry_policy(),
        pool=pools.MONGODB,
        group_name="demo",
        kinds={"mongodb"},
        description=f"Demo data only: a seeded population of {demo.users} users writing behaviour events into source "
        f"`{demo.source}` (`{source.collection}`), one day per partition (a rerun replaces exactly that day). It "
        "writes only the project's demo database (`<MINING_MONGO_DB>_<project>-demo`), and there only a collection it "
        "created itself; real data is never generated over.",
    )
    def demo_events(context: dg.AssetExecutionContext, config: DemoEventsConfig, mongo: MongoResource):
        # The generator needs numpy: loaded by the step, not by the code location.
        from mining_platform.demo.events import make_population
        from mining_platform.demo.store import claim_collection, write_days

        with failures_classified():
            population = make_population(demo.users, demo.seed)
            started = time.perf_counter()
            window = context.partition_time_window
            days = [window.start.date() + dt.timedelta(days=i) for i in range((window.end - window.start).days)]
            events = source_database(mongo.db(), source)[source.collection]
            claim_collection(events, project=project.name)  # ForeignCollection fails the run for good
            written = write_days(events, population, start_date=project.start_date, days=days, seed=demo.seed,
                                 drift=config.drift, entity_field=project.entity, log=context.log)
            counts = day_counts(mongo.db(), source, start=days[0], end=days[-1] + dt.timedelta(days=1))
            for day, count in sorted(counts.items()):
                context.log_event(dg.AssetObservation(asset_key=observed, partition=day,
                                                      tags={DATA_VERSION_TAG: count.version}))
            return dg.MaterializeResult(
                metadata={
                    "days": dg.MetadataValue.text(f"{days[0]} .. {days[-1]}" if len(days) > 1 else str(days[0])),
                    "events_written": dg.MetadataValue.int(sum(written.events_per_day.values())),
                    "events_replaced": dg.MetadataValue.int(written.replaced),
                    "active_users": dg.MetadataValue.int(len(written.users)),
                    "events_by_type": dg.MetadataValue.json(dict(sorted(written.by_type.items()))),
                    "events_per_day": dg.MetadataValue.json(written.events_per_day),
                    "drift": dg.MetadataValue.float(config.drift),
                    "duration_seconds": dg.MetadataValue.float(round(time.perf_counter() - started, 3)),
                    "collection": dg.MetadataValue.text(shown(source, mongo.db())),
                }
            )

    return demo_events
