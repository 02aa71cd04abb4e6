"""Feature materialisation: the platform against a raw `aggregate`, and bytes against pandas.

For each size (events in the partition's 30-day window) and each churn feature set:

* time: a whole `materialize` of one partition (audit records, registry, the
  aggregation with the platform's `$merge`, contracts, commit) against a raw
  `aggregate` of the same pipeline with a plain `$merge` into a scratch collection
  (the same documents written, nothing else); ratio goal <= 1.15x. Twice: the
  partition's first publication, and a rerun (the platform then also deletes the
  previous publication; the raw `$merge` replaces in place). The platform's own work
  without Dagster's run around it (`run_feature_pipeline`) is shown too. Medians of
  interleaved repetitions on the same embedded server in the same run.
* bytes moved to the client (pymongo command monitoring): the platform's aggregation
  against pulling the window's raw events into pandas to compute the same features
  (user_activity is computed in pandas too, for its time); ratio goal >= 1000x fewer
  at 100k events.

    .venv/bin/python -m bench.features [--sizes 20000 100000] [--repeat 3]
"""

import argparse
import datetime as dt
import statistics
import tempfile
import time
from pathlib import Path

import dagster as dg
import pandas as pd

from assets.features import build_feature_asset
from mining_platform.demo.events import generate_day, make_population
from mining_platform.demo.store import ensure_event_indexes
from mining_platform.features.pipeline import run_feature_pipeline
from mining_platform.spec.feature_files import load_feature_definition
from mining_platform.spec.parameters import parameter_values, substitute
from mining_platform.spec.project import load_project
from mining_platform.store.traffic import measure_reply_bytes
from mining_platform.tools.embedded_mongo import secured_server
from resources import MongoResource

REPO = Path(__file__).resolve().parents[1]
PIPELINE_DEFINITIONS = Path(__file__).resolve().parent / "pipeline_definitions"
PARTITION = dt.date(2024, 1, 31)
AS_OF = dt.datetime(2024, 2, 1, tzinfo=dt.timezone.utc)
ROWS = ("raw aggregate + $merge, first", "platform, no Dagster, first", "platform materialize, first",
        "raw aggregate + $merge, rerun", "platform materialize, rerun")
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def january(project, users: int):
    population = make_population(users, project.demo.seed)
    for offset in range(31):
        day = project.start_date + dt.timedelta(days=offset)
        yield generate_day(population, start_date=project.start_date, day=day, seed=project.demo.seed)


def users_for(project, target_events: int) -> int:
    """The population size whose January puts about `target_events` events in the window."""
    sample = 1000
    produced = sum(len(day) for day in list(january(project, sample))[1:])
    return max(10, round(sample * target_events / produced))


def load_events(mongo: MongoResource, project, users: int) -> int:
    """Generate January for `users` users; returns the events in the partition's window."""
    events = mongo.demo_db(project.name)[project.sources["user_events"].collection]
    events.drop()
    for documents in january(project, users):
        if documents:
            events.insert_many(documents, ordered=False)
    ensure_event_indexes(events, entity_field=project.entity)
    return events.count_documents({"timestamp": {"$gte": AS_OF - dt.timedelta(days=30), "$lt": AS_OF}})


def user_activity_in_pandas(raw: pd.DataFrame) -> pd.DataFrame:
    recent = raw["timestamp"] >= AS_OF - dt.timedelta(days=7)
    purchase = raw["event_type"] == "purchase"
    raw = raw.assign(day=raw["timestamp"].dt.floor("D"), recent=recent, purchase=purchase,
                     launch=raw["event_type"] == "app_launch",
                     amount=raw["payload"].map(lambda p: p.get("amount", 0.0)))
    users = raw.groupby("user_id")
    features = pd.DataFrame({
        "events_30d": users.size(), "events_7d": users["recent"].sum(),
        "active_days_30d": users["day"].nunique(), "active_days_7d": raw[recent].groupby("user_id")["day"].nunique(),
        "sessions_30d": users["launch"].sum(),
        "sessions_7d": raw[recent].groupby("user_id")["launch"].sum(),
        "purchases_30d": users["purchase"].sum(), "spend_30d": raw[purchase].groupby("user_id")["amount"].sum(),
        "days_since_last_event": (AS_OF - users["timestamp"].max()).dt.total_seconds() / 86400,
    }).fillna(0)
    features["events_per_session_30d"] = features["events_30d"] / features["sessions_30d"].clip(lower=1)
    features["recent_activity_share"] = features["events_7d"] / features["events_30d"]
    return features


def bench_size(mongo: MongoResource, project, definitions, target_events: int, repeat: int) -> None:
    users = users_for(project, target_events)
    in_window = load_events(mongo, project, users)
    events = mongo.demo_db(project.name)[project.sources["user_events"].collection]
    print(f"\n{in_window} events in the 30-day window ({users} users), median of {repeat}")

    window = {"timestamp": {"$gte": AS_OF - dt.timedelta(days=30), "$lt": AS_OF}}
    fields = {"_id": 0, "user_id": 1, "timestamp": 1, "event_type": 1, "session_id": 1, "payload": 1}
    pulled: list[dict] = []
    with measure_reply_bytes() as pandas_bytes:
        pull_seconds = timed(lambda: pulled.extend(events.find(window, fields)))
    pandas_seconds = timed(lambda: user_activity_in_pandas(pd.DataFrame(pulled)))
    print(f"  pandas: pull {pull_seconds:.2f}s + compute user_activity {pandas_seconds:.2f}s, "
          f"{pandas_bytes.total:,} bytes to the client")

    for definition in definitions:
        asset = build_feature_asset(project, definition)
        stages = substitute(definition.pipeline, parameter_values(
            as_of=AS_OF, window_days=definition.window_days, declared=definition.parameters))
        scratch = mongo.db()[f"bench_raw_{definition.name}"]

        def raw_aggregate():
            list(events.aggregate(stages + [{"$merge": {"into": scratch.name, "whenMatched": "replace"}}],
                                  allowDiskUse=True))

        def core():  # the platform's own work, without Dagster's run around it
            report = run_feature_pipeline(
                db=mongo.project_db(project.name), analytics=mongo.analytics_project_db(project.name),
                sources=mongo.analytics_db(), project=project, definition=definition,
                partitions=[(PARTITION.isoformat(), AS_OF)], dagster_run_id=None,
                max_time_ms=3_600_000)
            assert not report.failed

        def platform():
            result = dg.materialize([asset], resources={"mongo": mongo}, partition_key=PARTITION.isoformat(),
                                    run_config=QUIET)
            assert result.success

        def unpublished():  # as before the partition's first publication
            mongo.project_db(project.name)[definition.target].drop()
            mongo.project_db(project.name)["feature_partitions"].delete_many({"name": definition.name})
            scratch.drop()

        times: dict[str, list[float]] = {name: [] for name in ROWS}
        raw_aggregate()  # warm both paths (registry, first plans)
        platform()
        for _ in range(repeat):  # interleaved, so drift on a shared machine hits every row alike
            unpublished()
            times["raw aggregate + $merge, first"].append(timed(raw_aggregate))
            times["platform, no Dagster, first"].append(timed(core))
            unpublished()
            with measure_reply_bytes() as whole:
                times["platform materialize, first"].append(timed(platform))
            times["raw aggregate + $merge, rerun"].append(timed(raw_aggregate))
            times["platform materialize, rerun"].append(timed(platform))
        aggregation_bytes = mongo.project_db(project.name)["pipeline_runs"].find_one(
            {"pipeline.name": definition.name}, sort=[("created_at", -1)])["execution_stats"]["bytes_returned"]
        medians = {name: statistics.median(values) for name, values in times.items()}
        print(f"  {definition.name}:")
        for name, median in medians.items():
            baseline = medians["raw aggregate + $merge, " + name.rsplit(", ", 1)[1]]
            ratio = "" if name.startswith("raw") else f"  {median / baseline:5.2f}x raw aggregate"
            print(f"    {name:<32} {median:7.3f} s{ratio}")
        print(f"    bytes to the client: aggregation {aggregation_bytes:,}, whole materialisation "
              f"{whole.total:,} ({dict(whole.by_command)})")
        print(f"    pandas pulls {pandas_bytes.total / aggregation_bytes:,.0f}x the aggregation's bytes, "
              f"{pandas_bytes.total / whole.total:,.0f}x the whole materialisation's (goal >= 1000x at 100k)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[20_000, 100_000])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    project = load_project(REPO / "projects" / "churn")
    # The churn feature sets as pipeline definitions (recomputing each window from raw events), as they were before
    # they became windowed: this benchmark measures the pipeline path; bench.windowed measures tiles against it.
    definitions = [load_feature_definition(path, project) for path in sorted(PIPELINE_DEFINITIONS.glob("*.yaml"))]
    with tempfile.TemporaryDirectory() as tmp, secured_server(Path(tmp) / "mongo") as uri:
        mongo = MongoResource(uri=uri, database="bench")
        print("features: churn feature sets on the embedded MongoDB (SecantusDB)")
        for size in args.sizes:
            bench_size(mongo, project, definitions, size, args.repeat)


if __name__ == "__main__":
    main()
