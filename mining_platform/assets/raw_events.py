"""`<p>/raw/<events>`: one day of seeded demo behaviour events per daily partition."""

import datetime as dt
import time

import dagster as dg
from pydantic import Field

from mining_platform.demo.events import make_population
from mining_platform.demo.store import write_days
from mining_platform.keys import raw_key
from mining_platform.partitions import daily_partitions
from mining_platform.resilience import failures_classified, retry_policy
from mining_platform.resources import MongoResource
from mining_platform.spec.project import ProjectConfig


class DemoEventsConfig(dg.Config):
    drift: float = Field(
        default=0.0,
        ge=0.0,
        le=1.0,
        description="Shift the behaviour of the run's days: 0 = none, 1 = strong (fewer "
        "sessions, clicks pulled to new modules, bigger purchases). For exercising the drift loop.",
    )


def build_raw_events_asset(project: ProjectConfig) -> dg.AssetsDefinition:
    population = make_population(project.demo.users, project.demo.seed)

    @dg.asset(
        key=raw_key(project.name, project.events),
        partitions_def=daily_partitions(project),
        # A day takes seconds; one run per day would spend most of a backfill starting runs.
        backfill_policy=dg.BackfillPolicy.single_run(),
        retry_policy=retry_policy(),
        group_name="raw",
        kinds={"mongodb"},
        description=f"Raw behaviour events in `{project.events}`: a seeded demo population of "
        f"{project.demo.users} users, one day per partition (a rerun replaces exactly that day).",
    )
    def raw_events(
        context: dg.AssetExecutionContext, config: DemoEventsConfig, mongo: MongoResource
    ) -> dg.MaterializeResult:
        with failures_classified():
            started = time.perf_counter()
            window = context.partition_time_window
            days = [window.start.date() + dt.timedelta(days=i) for i in range((window.end - window.start).days)]
            written = write_days(mongo.db()[project.events], population, start_date=project.start_date, days=days,
                                 seed=project.demo.seed, drift=config.drift, entity_field=project.entity,
                                 log=context.log)
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
                    "collection": dg.MetadataValue.text(f"{mongo.database}.{project.events}"),
                }
            )

    return raw_events
