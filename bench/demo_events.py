"""Writing one demo day: the platform's paths against a raw insert_many of the same documents.

Baseline: `insert_many` of the day's documents into an empty collection with the
same indexes as the events collection (the least work any writer of that
collection must do). Measured against it on the same embedded server in the same
run: `replace_day` (one transaction deleting the existing day and inserting the new
one, what makes a rerun idempotent) and a whole `materialize` of the partition
(generation, Dagster, index checks, replace). An insert without indexes is shown
for reference. Medians of several repetitions, and their ratios.

    .venv/bin/python -m bench.demo_events [--users 2000] [--repeat 7]
"""

import argparse
import datetime as dt
import statistics
import tempfile
import time
from pathlib import Path

import dagster as dg

from assets.demo import build_demo_asset
from mining_platform.demo.events import generate_day, make_population
from mining_platform.demo.store import claim_collection, ensure_event_indexes, replace_day
from mining_platform.spec.project import load_project
from mining_platform.tools.embedded_mongo import secured_server
from resources import MongoResource

REPO = Path(__file__).resolve().parents[1]
DAY = dt.date(2024, 2, 5)


def timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()

    base = load_project(REPO / "projects" / "churn")
    project = base.model_copy(update={"demo": base.demo.model_copy(update={"users": args.users})})
    population = make_population(project.demo.users, project.demo.seed)

    def generate():
        return generate_day(population, start_date=project.start_date, day=DAY, seed=project.demo.seed)

    documents = generate()
    asset = build_demo_asset(project)
    names = ("generate", "insert, no index", "raw insert_many", "replace_day", "materialize")
    times: dict[str, list[float]] = {name: [] for name in names}
    quiet = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}

    with tempfile.TemporaryDirectory() as tmp, secured_server(Path(tmp) / "mongo") as uri:
        mongo = MongoResource(uri=uri, database="bench")
        demo = mongo.demo_db(project.name)
        plain, raw, events = (demo[name] for name in ("plain", "raw", project.sources["user_events"].collection))
        claim_collection(events, project=project.name)  # as the demo asset does before its first write
        ensure_event_indexes(events, entity_field=project.entity)
        replace_day(events, day=DAY, documents=documents)  # so every replace replaces a full day
        for _ in range(args.repeat):
            times["generate"].append(timed(generate))
            plain.drop()
            times["insert, no index"].append(timed(lambda: plain.insert_many(documents, ordered=False)))
            raw.drop()
            ensure_event_indexes(raw, entity_field=project.entity)
            times["raw insert_many"].append(timed(lambda: raw.insert_many(documents, ordered=False)))
            times["replace_day"].append(timed(lambda: replace_day(events, day=DAY, documents=documents)))
            times["materialize"].append(timed(lambda: dg.materialize(
                [asset], resources={"mongo": mongo}, partition_key=DAY.isoformat(), run_config=quiet)))

    medians = {name: statistics.median(values) for name, values in times.items()}
    baseline = medians["raw insert_many"]
    print(f"demo_events: one day = {len(documents)} events, {args.users} users, median of {args.repeat}")
    for name, median in medians.items():
        print(f"  {name:<16} {median * 1000:8.1f} ms   {median / baseline:5.2f}x raw insert_many (indexed)")


if __name__ == "__main__":
    main()
