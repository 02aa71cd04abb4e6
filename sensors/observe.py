"""`<p>_observe_sources_sensor`: the sources observed by a sensor tick, not by runs, and never the whole history at once.

Every tick (one minute apart; ticks of one sensor never overlap, so there is never more
than one observation in flight per project) reads, through the time index, the days
that can still change: the project's `automation.follow_days` latest partitions, and at
least the days late events can still reach. Older days are read by a full pass, one
chunk of at most `SWEEP_DAYS` days a tick, started again every `SWEEP_EVERY` after the
last one started: a replayed or deleted old day is noticed within that time. So a tick's
cost follows the days it reads, not the length of the history.

A day whose data version (event count, newest event time) changed is reported as a
runless observation of `<p>/sources/<key>`, exactly what `<p>_observe_sources_job`
records: tile and feature days follow it (`<p>_automation_sensor`). No run is launched, so
observing takes none of the instance's run slots.
"""

import dataclasses
import datetime as dt
import time

import dagster as dg

from assets.instance import observed_data_versions
from assets.keys import source_key
from mining_platform.sources.observe import (
    changed_versions,
    day_counts,
    next_sweep_range,
    recent_range,
    shown,
)
from mining_platform.spec.project import ProjectConfig
from mining_platform.spec.tags import DATA_VERSION_TAG, sensor_name
from resources import MongoResource
from sensors.cursor import dump_cursor, load_cursor

TICK_SECONDS = 60
SWEEP_EVERY = dt.timedelta(hours=1)


@dataclasses.dataclass
class ObserveCursor:
    sweep: dict[str, str] = dataclasses.field(default_factory=dict)  # source key -> next day of the full pass
    sweep_started: float | None = None  # epoch seconds the running (or last) full pass started


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _last_partition(project: ProjectConfig, now: dt.datetime) -> dt.date:
    """The newest daily partition: end_date, or yesterday (a day is a partition once it has ended)."""
    yesterday = now.date() - dt.timedelta(days=1)
    return min(project.end_date, yesterday) if project.end_date else yesterday


def observe_tick(context, mongo: MongoResource, project: ProjectConfig, cursor: ObserveCursor,
                 now: dt.datetime) -> tuple[list[dg.AssetObservation], list[str]]:
    """(the observations of the changed days, what was read) for one tick; advances `cursor`'s full pass."""
    last = _last_partition(project, now)
    if last < project.start_date:
        return [], [f"no partition yet (start_date {project.start_date})"]
    # A source removed from the project leaves the full pass; a pass never reads before the (moved) start_date.
    cursor.sweep = {key: max(day, project.start_date.isoformat()) for key, day in cursor.sweep.items()
                    if key in project.sources}
    if not cursor.sweep and (cursor.sweep_started is None
                             or now.timestamp() - cursor.sweep_started >= SWEEP_EVERY.total_seconds()):
        cursor.sweep = {key: project.start_date.isoformat() for key in project.sources}
        cursor.sweep_started = now.timestamp()
    events, read = [], []
    db = mongo.analytics_db()
    for key, source in project.sources.items():
        recent = recent_range(project.start_date, last, project.automation.follow_days, source.lateness_days)
        ranges = [recent]
        if key in cursor.sweep:
            chunk = next_sweep_range(dt.date.fromisoformat(cursor.sweep[key]), recent)
            if chunk.empty:
                del cursor.sweep[key]
            else:
                ranges.append(chunk)
                cursor.sweep[key] = chunk.end.isoformat()
        asset = source_key(project.name, key)
        for days in ranges:
            counts = day_counts(db, source, start=days.start, end=days.end)
            previous = observed_data_versions(context.instance, asset, days.days())
            changed = changed_versions(counts, previous, days.days())
            events.extend(dg.AssetObservation(asset, partition=day, tags={DATA_VERSION_TAG: version})
                          for day, version in sorted(changed.items()))
            what = "recent days" if days is recent else "full pass"
            read.append(f"{shown(source, db)} {days} ({what}): {sum(c.events for c in counts.values())} events, "
                        f"{len(changed)} days changed")
    return events, read


def build_observe_sensor(project: ProjectConfig) -> dg.SensorDefinition:
    @dg.sensor(
        name=sensor_name(project.name, "observe_sources"),
        minimum_interval_seconds=TICK_SECONDS,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Observes the project's sources in MongoDB: the latest days every minute, older days by a full "
        "pass a chunk at a time (hourly); reports the days whose events changed, which tile and feature days follow. "
        "Launches no run.",
    )
    def observe_sources(context: dg.SensorEvaluationContext, mongo: MongoResource):
        cursor = load_cursor(ObserveCursor, context.cursor, context.log)
        started = time.monotonic()
        # A source that cannot be read fails the tick (shown on the sensor's page), with the cursor unchanged.
        events, read = observe_tick(context, mongo, project, cursor, _now())
        summary = f"{'; '.join(read)} in {time.monotonic() - started:.2f} s"
        context.update_cursor(dump_cursor(cursor))
        if not events:
            return dg.SkipReason(f"no day changed: {summary}")
        context.log.info(summary)
        return dg.SensorResult(asset_events=events)

    return observe_sources
