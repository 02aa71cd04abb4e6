"""Windowed definitions from tiles against pipeline definitions that recompute every window from raw events.

The same features (churn's `user_activity`, 30- and 7-day windows) two ways on the same
embedded server in the same run, over demo events of `--users` users:

1. A backfill of `--days` days: the windowed definition (tile every source day once,
   then combine each window from committed tiles) against the pipeline definition
   (each partition re-aggregates its 30 days of raw events). Goal: at least 10x
   faster. The published documents of every partition are compared: identical
   (floats to 1e-9).
2. The daily steady state: one new day with the earlier tiles committed (tile that day,
   combine its window) against one pipeline partition.
3. Bytes returned to the client per partition (pymongo command monitoring of the runs).

    .venv/bin/python -m bench.windowed [--days 60] [--users 200]
"""

import argparse
import datetime as dt
import logging
import math
import statistics
import tempfile
import time
from pathlib import Path

from mining_platform.demo.events import generate_day, make_population
from mining_platform.demo.store import ensure_event_indexes
from mining_platform.features.pipeline import run_feature_pipeline
from mining_platform.features.windowed import run_tiles, run_windows
from mining_platform.spec.feature_files import load_feature_definition
from mining_platform.spec.project import load_project
from mining_platform.store import markers
from mining_platform.tools.embedded_mongo import secured_server
from resources import MongoResource

REPO = Path(__file__).resolve().parents[1]
UTC = dt.timezone.utc
QUIET = logging.getLogger("bench.windowed")
QUIET.setLevel(logging.WARNING)


def partitions(first: dt.date, days: int) -> list[tuple[str, dt.datetime]]:
    return [((first + dt.timedelta(days=k)).isoformat(),
             dt.datetime.combine(first + dt.timedelta(days=k + 1), dt.time(), tzinfo=UTC)) for k in range(days)]


def same(a: dict, b: dict, columns) -> bool:
    for column in columns:
        x, y = a.get(column), b.get(column)
        if x is None or y is None:
            if x is not y:
                return False
        elif not math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-9):
            return False
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--users", type=int, default=200)
    args = parser.parse_args()
    project = load_project(REPO / "projects" / "churn")
    windowed = load_feature_definition(REPO / "projects" / "churn" / "features" / "user_activity.yaml", project)
    pipeline = load_feature_definition(Path(__file__).parent / "pipeline_definitions" / "user_activity.yaml", project)
    population = make_population(args.users, project.demo.seed)
    with tempfile.TemporaryDirectory() as tmp, secured_server(Path(tmp) / "mongo") as uri:
        mongo = MongoResource(uri=uri, database="bench")
        events = mongo.demo_db("churn")["user_events"]
        ensure_event_indexes(events, entity_field=project.entity)
        for k in range(args.days + 1):
            day = project.start_date + dt.timedelta(days=k)
            events.insert_many(generate_day(population, start_date=project.start_date, day=day, seed=project.demo.seed))
        total = events.count_documents({})
        backfill = partitions(project.start_date, args.days)
        new_day = partitions(project.start_date + dt.timedelta(days=args.days), 1)
        # Each path in its own namespace: the pipeline definition as project "raw", the windowed one as "tiled".
        raw_project = project.model_copy(update={"name": "raw"})
        tiled_project = project.model_copy(update={"name": "tiled"})
        raw_db, tiled_db = mongo.project_db("raw"), mongo.project_db("tiled")

        def run_pipeline(parts):
            report = run_feature_pipeline(db=raw_db, analytics=mongo.analytics_project_db("raw"),
                                          sources=mongo.analytics_db(), project=raw_project, definition=pipeline,
                                          partitions=parts, dagster_run_id=None, max_time_ms=3_600_000, log=QUIET)
            assert not report.failed, report.failed[0].error
            durations["pipeline partition"] += [o.duration_seconds for o in report.outcomes]
            return sum(o.bytes_returned for o in report.outcomes)

        def run_tiled(parts):
            tiles = run_tiles(db=tiled_db, analytics=mongo.analytics_project_db("tiled"), sources=mongo.analytics_db(),
                              project=tiled_project, definition=windowed, partitions=parts, dagster_run_id=None,
                              max_time_ms=3_600_000, log=QUIET)
            assert not tiles.failed, tiles.failed[0].error
            report = run_windows(db=tiled_db, analytics=mongo.analytics_project_db("tiled"), project=tiled_project,
                                 definition=windowed, partitions=parts, dagster_run_id=None, max_time_ms=3_600_000,
                                 log=QUIET)
            assert not report.failed, report.failed[0].error
            durations["tile day"] += [o.duration_seconds for o in tiles.outcomes]
            durations["window partition"] += [o.duration_seconds for o in report.outcomes]
            return sum(o.bytes_returned for o in tiles.outcomes + report.outcomes)

        durations: dict[str, list[float]] = {"pipeline partition": [], "tile day": [], "window partition": []}

        started = time.perf_counter()
        raw_bytes = run_pipeline(backfill)
        raw_seconds = time.perf_counter() - started
        started = time.perf_counter()
        tiled_bytes = run_tiled(backfill)
        tiled_seconds = time.perf_counter() - started

        differing = 0
        for _, as_of in backfill:
            a = {d["user_id"]: d for d in markers.read_committed(raw_db, pipeline, as_of)}
            b = {d["user_id"]: d for d in markers.read_committed(tiled_db, windowed, as_of)}
            differing += a.keys() != b.keys() or any(not same(a[u], b[u], windowed.features) for u in a)

        steady = {}
        for name, run in (("pipeline", run_pipeline), ("tiles", run_tiled)):
            started = time.perf_counter()
            run(new_day)
            steady[name] = time.perf_counter() - started

    print(f"windowed: churn user_activity, {args.users} users, {total:,} events over {args.days + 1} days, "
          "the embedded MongoDB")
    print(f"  {args.days}-day backfill  pipeline (30 days of raw events per partition) {raw_seconds:7.1f} s")
    print(f"  {args.days}-day backfill  windowed (tile each day once, combine)         {tiled_seconds:7.1f} s   "
          f"{raw_seconds / tiled_seconds:5.1f}x faster (goal >= 10x)")
    print(f"  partitions whose documents differ: {differing} of {len(backfill)} (floats to 1e-9)")
    print(f"  one new day       pipeline {steady['pipeline']:.2f} s, windowed {steady['tiles']:.2f} s   "
          f"{steady['pipeline'] / steady['tiles']:.1f}x")
    print(f"  bytes to the client per partition: pipeline {raw_bytes / len(backfill):,.0f}, windowed (tiles + "
          f"window) {tiled_bytes / len(backfill):,.0f}")
    print("  median seconds per partition run (aggregation, checks, commit): " + ", ".join(
        f"{name} {statistics.median(values):.2f}" for name, values in durations.items()))


if __name__ == "__main__":
    main()
