"""Windowed feature sets, computed incrementally in MongoDB: daily tiles once, then windows combined from tiles.

Tiles: for source day D, one aggregation turns that day's events (after the definition's
`filter`) into, per entity, one main tile of `tiles_<name>` with the partial aggregates of
every op (the event count, first and last event time, and per aggregation a sum, a
count of numbers, a minimum or a maximum; an aggregation with a `where` expression has
its own, over the events it keeps) and one row per value of each count_by aggregation
with its count. A tile partition is
published like a feature partition (audited run, commit marker `tiles/<name>` in
`feature_partitions`), so a re-tiled day replaces its tiles atomically.

Windows: partition T (as_of = the end of day T) reads the committed tiles of days
T-w+1 .. T of its longest window w (days before the project's `start_date` are outside
the data and count as empty), combines each window's partials in `$group`s (per entity,
tile row and shortest window holding the day; per entity and tile row; per entity; see
`window_stages`), turns them into the declared features (`<name>_<w>d`), applies `post`, and ends in the same
write stages, contract check and commit as a pipeline definition. A day's events are
therefore aggregated once however many windows hold them.

Semantics per op over a window (an entity is in a window partition when it has events
in its longest window): count, sum and active_days are 0 without events in the window;
mean, min, max, days_since_last and days_since_first are null (sum, mean, min and max
read numbers only: a text or missing value is not one); count_by is a list of
`{value, count}` (events whose field is missing or null are not counted), most frequent
first, ties by value. days_since_* are fractional days from the event to as_of.
"""

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from pymongo.database import Database

from mining_platform.features.pipeline import ExecutionReport, FeatureJob, FeatureOutcome, write_stages
from mining_platform.features.window_stages import (
    DAY,
    PART,
    TILE_FORMAT,
    day_as_of,
    tile_stages,
    window_days_needed,
    window_stages,
)
from mining_platform.sources.observe import source_database
from mining_platform.spec import names
from mining_platform.spec.definition import OutputBoundExceeded
from mining_platform.spec.names import FEATURE_MARKERS
from mining_platform.spec.parameters import substitute
from mining_platform.spec.project import ProjectConfig
from mining_platform.spec.windowed import WindowedDefinition
from mining_platform.store import markers
from mining_platform.store.job import Aggregation, PartitionOutcome
from mining_platform.store.loop import run_partitions
from mining_platform.store.versions import register

RANGE_DAYS = 31


@dataclass(frozen=True)
class TilesPipeline:
    """A windowed definition's tiles as an audited pipeline: `tiles/<name>`, the definition's version and hash."""

    definition: WindowedDefinition

    @property
    def name(self) -> str:
        return names.tiles_pipeline(self.definition.name)

    @property
    def version(self) -> int:
        return self.definition.version

    @property
    def content_hash(self) -> str:
        return self.definition.content_hash

    @property
    def target(self) -> str:
        return self.definition.tiles_target

    def trigger_parameters(self) -> dict:
        return self.definition.trigger_parameters()


@dataclass
class TileOutcome(PartitionOutcome):
    pass


class TileJob:
    """One source day's tiles of a windowed definition, for the partition loop."""

    markers = FEATURE_MARKERS
    scratch = ()

    def __init__(self, project: ProjectConfig, definition: WindowedDefinition, sources: Database):
        self.definition = definition
        self.pipeline = TilesPipeline(definition)
        self.project = project.name
        self.entity = project.entity
        self.source = project.sources[definition.source]
        self.sources = sources

    def ensure_indexes(self, db: Database) -> None:
        markers.ensure_partition_index(db, self.pipeline.target, entity=self.entity, extra=(PART,))
        markers.ensure_marker_index(db, self.markers)

    def new_outcome(self, partition: str, as_of: dt.datetime) -> TileOutcome:
        return TileOutcome(partition=partition, as_of=as_of)

    def refusal(self, db: Database, outcome: TileOutcome) -> None:
        return None

    def window_start(self, as_of: dt.datetime) -> dt.datetime:
        return as_of - DAY

    def prepare(self, db: Database, analytics: Database, outcomes: list[TileOutcome]) -> None:
        register(db, self.definition, project=self.project)

    # Days a backfill tiles in one pass over the source (a month: one index range, one $group, one $merge).
    range_days = RANGE_DAYS

    def aggregations(self, db: Database, outcome: TileOutcome) -> list[Aggregation]:
        return self.range_aggregations(db, [outcome])

    def range_aggregations(self, db: Database, outcomes: list[TileOutcome]) -> list[Aggregation]:
        stages = tile_stages(self.definition, timestamp=self.source.timestamp, entity=self.entity,
                             days=[(o.as_of - DAY, o.run_id) for o in outcomes], database=db.name)
        return [Aggregation(collection=self.source.collection, database=source_database(self.sources, self.source).name,
                            stages=substitute(stages, dict(self.definition.parameters)))]

    def verify_range(self, db: Database, outcomes: list[TileOutcome], *, max_time_ms: int) -> None:
        written = db[self.pipeline.target].count_documents(
            {"as_of": {"$gte": outcomes[0].as_of, "$lte": outcomes[-1].as_of},
             "run_id": {"$in": [o.run_id for o in outcomes]}}, maxTimeMS=max_time_ms)
        reached = (self.definition.bounds.max_documents + 1) * len(outcomes)
        if written >= reached:
            raise OutputBoundExceeded(
                f"tiles: the pass over {outcomes[0].partition} .. {outcomes[-1].partition} wrote {written} documents, "
                f"its limit ({len(outcomes)} days x limits.max_documents + 1): a day is over limits.max_documents = "
                f"{self.definition.bounds.max_documents}")

    def verify(self, db: Database, outcome: TileOutcome, *, max_time_ms: int) -> None:
        outcome.documents_written = db[self.pipeline.target].count_documents(
            {"as_of": outcome.as_of, "run_id": outcome.run_id}, maxTimeMS=max_time_ms)
        over = self.definition.bounds.exceeded(documents=outcome.documents_written)
        if over:
            raise OutputBoundExceeded(f"tiles: {over}")

    def marker_fields(self, outcome: TileOutcome) -> dict:
        return {"day": (outcome.as_of - DAY).date().isoformat(), "tile_format": TILE_FORMAT}

    def summary(self, outcome: TileOutcome) -> str:
        return f"{self.pipeline.name} {outcome.partition}: {outcome.documents_written} tiles published (run {outcome.run_id})"


class WindowJob(FeatureJob):
    """A windowed definition's window partitions, combined from committed tiles; checked and published as a
    pipeline definition's partitions are (the verification, indexes and outcomes are FeatureJob's)."""

    def __init__(self, project: ProjectConfig, definition: WindowedDefinition, report: ExecutionReport):
        super().__init__(project, definition, report, sources=None)
        self.first_day = project.start_date

    def _tile_runs(self, db: Database, as_of: dt.datetime) -> tuple[dict[dt.datetime, str], list[str]]:
        """(tile as_of -> run id of the committed tiles of each of the window's days, days without tiles of this
        version), in one query."""
        tiles = names.tiles_pipeline(self.pipeline.name)
        days = window_days_needed(self.pipeline, as_of, self.first_day)
        found = {m["as_of"].date(): m for m in db[FEATURE_MARKERS].find(
            {"name": tiles, "as_of": {"$in": [day_as_of(d) for d in days]}},
            {"as_of": 1, "run_id": 1, "pipeline_hash": 1, "tile_format": 1})}
        runs, missing = {}, []
        for day in days:
            marker = found.get(day + DAY)
            if (marker is None or marker.get("pipeline_hash") != self.pipeline.content_hash
                    or marker.get("tile_format") != TILE_FORMAT):
                missing.append(day.isoformat())
            else:
                runs[day_as_of(day)] = marker["run_id"]
        return runs, missing

    def refusal(self, db: Database, outcome: FeatureOutcome) -> str | None:
        _, missing = self._tile_runs(db, outcome.as_of)
        if missing:
            shown = ", ".join(missing) if len(missing) <= 6 else f"{missing[0]} .. {missing[-1]} ({len(missing)} days)"
            return (f"no committed tiles of version {self.pipeline.version} for {shown}; materialise "
                    f"{names.shown(names.tiles_asset(self.project, self.pipeline.name))} for those days first")
        return None

    def prepare(self, db: Database, analytics: Database, outcomes: list[FeatureOutcome]) -> None:
        self.report.newly_registered = register(db, self.pipeline, project=self.project)
        self.report.first_match_plan = "windowed: combines committed tiles, no source scan"

    def aggregations(self, db: Database, outcome: FeatureOutcome) -> list[Aggregation]:
        # The markers as they are now: a tile day recommitted since the refusal check is read new.
        runs, missing = self._tile_runs(db, outcome.as_of)
        if missing:
            raise RuntimeError(f"tiles of {', '.join(missing)} disappeared before the window ran")
        stages = window_stages(self.pipeline, entity=self.entity, as_of=outcome.as_of, tiles=runs)
        return [Aggregation(collection=self.pipeline.tiles_target, primary=True, stages=stages + write_stages(
            self.pipeline, entity=self.entity, as_of=outcome.as_of, run_id=outcome.run_id))]

    def summary(self, outcome: FeatureOutcome) -> str:
        return f"{super().summary(outcome)} from tiles"


@dataclass
class TilesReport:
    definition: WindowedDefinition
    outcomes: list[TileOutcome] = field(default_factory=list)
    abandoned_runs: list[str] = field(default_factory=list)

    @property
    def failed(self) -> list[TileOutcome]:
        return [o for o in self.outcomes if not o.committed]


def run_tiles(*, db: Database, analytics: Database, sources: Database, project: ProjectConfig,
              definition: WindowedDefinition, partitions: list[tuple[str, dt.datetime]], dagster_run_id: str | None,
              max_time_ms: int, log: logging.Logger | logging.LoggerAdapter = logging.getLogger(__name__),
              dagster_run_finished: Callable[[str], bool | None] = lambda run_id: None) -> TilesReport:
    """Tile each (partition key, as_of) source day and publish it; `db`/`analytics` the project's namespace."""
    job = TileJob(project, definition, sources)
    result = run_partitions(job, db=db, analytics=analytics, partitions=partitions, dagster_run_id=dagster_run_id,
                            max_time_ms=max_time_ms, log=log, dagster_run_finished=dagster_run_finished)
    return TilesReport(definition, result.outcomes, result.abandoned_runs)


def run_windows(*, db: Database, analytics: Database, project: ProjectConfig, definition: WindowedDefinition,
                partitions: list[tuple[str, dt.datetime]], dagster_run_id: str | None, max_time_ms: int,
                log: logging.Logger | logging.LoggerAdapter = logging.getLogger(__name__),
                dagster_run_finished: Callable[[str], bool | None] = lambda run_id: None) -> ExecutionReport:
    """Combine and publish each window partition from committed tiles (refused while a day's tiles are missing)."""
    report = ExecutionReport(definition=definition)
    job = WindowJob(project, definition, report)
    result = run_partitions(job, db=db, analytics=analytics, partitions=partitions, dagster_run_id=dagster_run_id,
                            max_time_ms=max_time_ms, log=log, dagster_run_finished=dagster_run_finished)
    report.outcomes, report.abandoned_runs = result.outcomes, result.abandoned_runs
    return report
