"""Observing a source costs what the tick reads, not the length of the history: `<p>_observe_sources_sensor` ticks
over a source of 1x and 10x the history (`--days`, then ten times as many, `--per-day` events a day, the same
density), against the baseline, the full observation (`<p>_observe_sources_job`'s pass over every day).

Each size gets a fresh source and Dagster instance; the first tick (the latest days and the first chunk of the full
pass over an unobserved history) is not counted; the next `--ticks` ticks read the latest days and the full pass's
next chunk (31 days); then, the full pass over, `--ticks` ticks read the latest days alone, one of them after a late
event on the latest day. Goal: for both kinds of tick, the median at 10x at most 1.2x the median at 1x.

    .venv/bin/python -m bench.observation [--days 365] [--per-day 100] [--ticks 7]
"""

import argparse
import datetime as dt
import json
import logging
import statistics
import tempfile
import time
from pathlib import Path

import dagster as dg

from assets.partitions import daily_partitions
from assets.sources import observe_source
from mining_platform.spec.project import AutomationConfig, load_project
from mining_platform.tools.embedded_mongo import secured_server
from resources import MongoResource
from sensors import observe

REPO = Path(__file__).resolve().parent.parent
GOAL = 1.2
START = dt.date(2013, 1, 1)


def fill(collection, days: int, per_day: int) -> None:
    collection.create_index("at")
    spacing = dt.timedelta(days=1) / per_day
    batch = []
    for d in range(days):
        day = dt.datetime.combine(START + dt.timedelta(days=d), dt.time(), dt.timezone.utc)
        batch.extend({"aircraft": f"N{(d * per_day + i) % 4000:05d}", "at": day + i * spacing} for i in range(per_day))
        if len(batch) >= 50_000:
            collection.insert_many(batch)
            batch = []
    if batch:
        collection.insert_many(batch)


def measure(mongo: MongoResource, days: int, per_day: int, ticks: int) -> tuple[dict[str, list[float]], float]:
    """({"chunk": seconds of ticks reading a chunk of the full pass too, "recent": of ticks reading the latest days
    alone}, seconds of one full observation) over `days` days of history."""
    name = f"history_{days}"
    base = load_project(REPO / "projects" / "churn")
    source = base.sources["user_events"].model_copy(update={"collection": name, "timestamp": "at", "demo_of": None})
    project = base.model_copy(update={
        "entity": "aircraft", "demo": None, "sources": {"flights": source}, "start_date": START,
        "end_date": START + dt.timedelta(days=days - 1), "automation": AutomationConfig(follow_days=3)})
    events = mongo.db()[name]
    fill(events, days, per_day)
    sensor = observe.build_observe_sensor(project)
    now = dt.datetime.combine(project.end_date + dt.timedelta(days=2), dt.time(12), dt.timezone.utc)
    observe._now = lambda: now
    with dg.instance_for_test() as instance:
        cursor, times = None, {"chunk": [], "recent": []}
        for tick in range(2 * ticks + 1):
            if tick == ticks + 1:  # the full pass done (as an hour later): the latest days alone
                state = json.loads(cursor)
                cursor = json.dumps({**state, "sweep": {}, "sweep_started": now.timestamp()})
            if tick == ticks + ticks // 2:  # a late event on the latest day
                events.insert_one({"aircraft": "N00001", "at": now - dt.timedelta(days=2, hours=1)})
            context = dg.build_sensor_context(instance=instance, cursor=cursor, resources={"mongo": mongo})
            started = time.perf_counter()
            result = sensor(context)
            if tick:
                times["chunk" if tick <= ticks else "recent"].append(time.perf_counter() - started)
            for event in getattr(result, "asset_events", None) or []:
                instance.report_runless_asset_event(event)
            cursor = context.cursor
        context = dg.build_asset_context(instance=instance)
        started = time.perf_counter()
        observe_source(context, mongo, project, "flights", daily_partitions(project))
        full = time.perf_counter() - started
    return times, full


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--per-day", type=int, default=100)
    parser.add_argument("--ticks", type=int, default=7)
    args = parser.parse_args()
    logging.getLogger("dagster").setLevel(logging.WARNING)  # the ticks' own summaries
    results = {}
    with tempfile.TemporaryDirectory() as tmp, secured_server(Path(tmp) / "mongo") as uri:
        mongo = MongoResource(uri=uri, database="bench")
        for scale in (1, 10):
            results[scale] = measure(mongo, args.days * scale, args.per_day, args.ticks)
    print(f"observation: a source of {args.per_day} events a day, the embedded MongoDB, follow_days 3")
    for scale, (ticks, full) in results.items():
        print(f"  {scale:2}x history ({args.days * scale:5} days, {args.days * scale * args.per_day:9,} events): tick "
              f"with a full-pass chunk {statistics.median(ticks['chunk']):6.3f} s, latest days alone "
              f"{statistics.median(ticks['recent']):6.3f} s (medians); the full observation {full:7.2f} s")
    for kind, what in (("chunk", "with a full-pass chunk"), ("recent", "latest days alone")):
        ratio = statistics.median(results[10][0][kind]) / statistics.median(results[1][0][kind])
        print(f"  tick {what}, 10x / 1x: {ratio:.2f} (goal <= {GOAL})")
    print(f"  the full observation (baseline), 10x / 1x: {results[10][1] / results[1][1]:.1f}")

if __name__ == "__main__":
    main()
