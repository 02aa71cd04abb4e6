"""Windowed feature definitions: tiles once per source day, windows combined from tiles, the same answers as
pandas over the raw events and as the equivalent pipeline definition, and every refusal with its message."""

import copy
import datetime as dt

import dagster as dg
import numpy as np
import pandas as pd
import pytest
import yaml

from assets.features import build_feature_assets, build_tiles_asset
from mining_platform.features.pipeline import run_feature_pipeline
from mining_platform.features.window_stages import window_stages
from mining_platform.features.windowed import run_tiles, run_windows
from mining_platform.spec.definition import FeatureDefinition
from mining_platform.spec.feature_files import load_feature_definition, load_feature_definitions
from mining_platform.store import markers
from tests.conftest import REPO
from tests.fixtures.mongo import as_resource
from tests.fixtures.windowed import START, WINDOWED, changed, project, windowed, write  # noqa: F401 (fixtures)

UTC = dt.timezone.utc
DAYS = 10  # source days 01-01 .. 01-10
AS_OF = dt.datetime(2024, 1, 11, tzinfo=UTC)  # the window partition 2024-01-10


def at(day, hour=12, minute=0, second=0):
    return dt.datetime(2024, 1, day, hour, minute, second, tzinfo=UTC)


def event(user, when, event_type="click", amount=None, module=None):
    payload = {}
    if amount is not None:
        payload["amount"] = amount
    if module is not None:
        payload["module_id"] = module
    return {"user_id": user, "timestamp": when, "event_type": event_type, "session_id": f"{user}-{when:%d}",
            "payload": payload}


# Window edges: the 7-day window of as_of 01-11 is [01-04 00:00, 01-11 00:00); 3 days: [01-08, 01-11).
EVENTS = [
    event("u1", at(4, 0, 0, 0), module="home"),                 # first instant of the 7-day window
    event("u1", at(3, 23, 59, 59), module="home"),              # last instant before it: out
    event("u1", at(8, 0, 0, 0), "purchase", amount=20.0),        # first instant of the 3-day window
    event("u1", at(10, 23, 59, 59), module="search"),            # last instant of the window
    event("u1", at(9), "purchase", amount=5.5),
    event("u1", at(9), module="home"),
    event("u2", at(6), "purchase", amount=100),                  # an integer amount; nothing in the last 3 days
    event("u2", at(6), module=None),                            # a click without a module: not counted by value
    event("u3", at(10, 8), module="home"),                       # appears on the last day only
    event("u4", at(2), module="home"),                          # only before the window: not in the partition
    event("u5", at(9), "app_launch"),                           # filtered out
    event("u1", at(11, 0, 0, 0), module="home"),                # as_of itself: the next day's
    event("u6", at(5), "purchase", amount="12"),                 # a text amount: not a number to any op
]


def expected_from_pandas() -> pd.DataFrame:
    frame = pd.DataFrame([{**e, "amount": e["payload"].get("amount"), "module": e["payload"].get("module_id")}
                          for e in EVENTS])
    frame = frame[frame.event_type.isin(["click", "purchase"]) & (frame.timestamp < AS_OF)]
    rows = {}
    for user, events in frame.groupby("user_id"):
        def window(days):
            return events[events.timestamp >= AS_OF - dt.timedelta(days=days)]

        w7, w3 = window(7), window(3)
        if w7.empty:
            continue
        numbers = [a for a in w7.amount if isinstance(a, int | float) and not isinstance(a, bool) and a == a]
        numbers3 = [a for a in w3.amount if isinstance(a, int | float) and not isinstance(a, bool) and a == a]
        counts = w7.module.dropna().value_counts()
        bought, clicks = w7[w7.event_type == "purchase"], w7[w7.event_type == "click"]
        rows[user] = {
            "events_3d": len(w3), "events_7d": len(w7),
            "spend_7d": float(sum(numbers)),
            "low_7d": min(numbers) if numbers else None, "high_7d": max(numbers) if numbers else None,
            "high_3d": max(numbers3) if numbers3 else None,
            "avg_7d": sum(numbers) / len(numbers) if numbers else None,
            "days_3d": w3.timestamp.dt.date.nunique(), "days_7d": w7.timestamp.dt.date.nunique(),
            "recency_3d": (AS_OF - w3.timestamp.max()).total_seconds() / 86400 if len(w3) else None,
            "recency_7d": (AS_OF - w7.timestamp.max()).total_seconds() / 86400,
            "tenure_7d": (AS_OF - w7.timestamp.min()).total_seconds() / 86400,
            "distinct_modules_7d": len(counts),
            "top_module_share_7d": counts.iloc[0] / counts.sum() if len(counts) else None,
            "purchases_3d": int((w3.event_type == "purchase").sum()),
            "purchases_7d": int((w7.event_type == "purchase").sum()),
            "purchase_days_7d": bought.timestamp.dt.date.nunique(),
            "since_purchase_7d": (AS_OF - bought.timestamp.max()).total_seconds() / 86400 if len(bought) else None,
            "first_click_7d": (AS_OF - clicks.timestamp.min()).total_seconds() / 86400 if len(clicks) else None,
            "click_amounts_7d": 0,  # clicks carry no amount: a sum over nothing is 0
            "home_values_7d": int((w7.module == "home").any()),
        }
    return pd.DataFrame.from_dict(rows, orient="index").sort_index()


def day_partitions(days):
    return [(d.isoformat(), dt.datetime(d.year, d.month, d.day, tzinfo=UTC) + dt.timedelta(days=1)) for d in days]


def build(mongo, project, definition, *, tile_days=None):
    db, analytics = mongo.project_db(project.name), mongo.analytics_project_db(project.name)
    days = tile_days or [START + dt.timedelta(days=k) for k in range(DAYS)]
    tiles = run_tiles(db=db, analytics=analytics, sources=mongo.analytics_db(), project=project, definition=definition,
                      partitions=day_partitions(days), dagster_run_id=None, max_time_ms=60_000)
    assert not tiles.failed, [o.error for o in tiles.failed]
    return run_windows(db=db, analytics=analytics, project=project, definition=definition,
                       partitions=[("2024-01-10", AS_OF)], dagster_run_id=None, max_time_ms=60_000)


def published_frame(db, definition) -> pd.DataFrame:
    rows = markers.read_committed(db, definition, AS_OF)
    return pd.DataFrame(rows).set_index("user_id").sort_index()[list(definition.features)]


# The same ops without count_by: the window is then combined by one $group per entity instead of three.
WITHOUT_COUNT_BY = {
    **WINDOWED, "name": "activity_plain", "post": [],
    "aggregations": {n: a for n, a in WINDOWED["aggregations"].items() if a["op"] != "count_by"},
    "features": {f: c for f, c in WINDOWED["features"].items()
                 if f not in ("distinct_modules_7d", "home_values_7d", "top_module_share_7d")},
}


@pytest.fixture(params=["with count_by", "without count_by"])
def every_op(request, tmp_path, project, windowed):
    if request.param == "with count_by":
        return windowed
    path = tmp_path / project.name / "features" / "activity_plain.yaml"
    path.write_text(yaml.safe_dump(WITHOUT_COUNT_BY, sort_keys=False))
    return load_feature_definition(path, project)


def test_windows_from_tiles_equal_pandas_over_the_raw_events(mongo, project, every_op):
    windowed = every_op
    mongo.demo_db("churn")["user_events"].insert_many(copy.deepcopy(EVENTS))
    report = build(mongo, project, windowed)
    assert not report.failed, [o.error for o in report.failed]
    got = published_frame(mongo.project_db(project.name), windowed)
    expected = expected_from_pandas()[list(windowed.features)]
    assert list(got.index) == ["u1", "u2", "u3", "u6"]
    assert list(expected.index) == list(got.index)
    for feature in windowed.features:
        for user in got.index:
            have, want = got.at[user, feature], expected.at[user, feature]
            if want is None or (isinstance(want, float) and np.isnan(want)):
                assert have is None or (isinstance(have, float) and np.isnan(have)), (user, feature, have)
            else:
                assert have == pytest.approx(want, rel=1e-9, abs=1e-9), (user, feature, have, want)
    # Integer amounts stay exact; the tiles were computed once per day.
    assert got.at["u2", "spend_7d"] == 100 and got.at["u2", "events_3d"] == 0 and pd.isna(got.at["u2", "high_3d"])
    tiles = mongo.project_db(project.name)[windowed.tiles_target]
    assert tiles.count_documents({"cb": ""}) == len({(e["user_id"], e["timestamp"].date()) for e in EVENTS
                                                       if e["event_type"] != "app_launch" and e["timestamp"] < AS_OF})
    # Per count_by value and day one row: u1 clicked "home" on 01-03, 01-04 and 01-09, "search" on 01-10.
    assert tiles.count_documents({"user_id": "u1", "cb": "modules"}) == (4 if "modules" in windowed.aggregations else 0)
    stages = window_stages(windowed, entity="user_id", as_of=AS_OF, tiles={AS_OF: "run"})
    assert sum("$group" in stage for stage in stages) == (3 if "modules" in windowed.aggregations else 1)


EQUIVALENT_PIPELINE = {
    "name": "activity_raw",
    "version": 1,
    "description": "The windowed definition's count, sum, active days and recency, recomputed from raw events.",
    "owner": "tests",
    "source": "user_events",
    "window_days": 7,
    "pipeline": [
        {"$match": {"timestamp": {"$gte": {"$param": "window_start"}, "$lt": {"$param": "as_of"}},
                    "event_type": {"$in": ["click", "purchase"]}}},
        {"$group": {
            "_id": "$user_id",
            "events_7d": {"$sum": 1},
            "events_3d": {"$sum": {"$cond": [{"$gte": ["$timestamp", {"$dateSubtract": {
                "startDate": {"$param": "as_of"}, "unit": "day", "amount": 3}}]}, 1, 0]}},
            "spend_7d": {"$sum": "$payload.amount"},
            "days": {"$addToSet": {"$dateTrunc": {"date": "$timestamp", "unit": "day"}}},
            "last": {"$max": "$timestamp"},
        }},
        {"$project": {"events_7d": 1, "events_3d": 1, "spend_7d": 1, "days_7d": {"$size": "$days"},
                      "recency_7d": {"$divide": [{"$subtract": [{"$param": "as_of"}, "$last"]}, 86400000]}}},
    ],
    "features": {"events_7d": {"type": "int"}, "events_3d": {"type": "int"}, "spend_7d": {"type": "float"},
                 "days_7d": {"type": "int"}, "recency_7d": {"type": "float"}},
}


def test_a_windowed_definition_and_the_equivalent_pipeline_definition_publish_the_same(mongo, project, windowed):
    mongo.demo_db("churn")["user_events"].insert_many(copy.deepcopy(EVENTS))
    assert not build(mongo, project, windowed).failed
    raw = FeatureDefinition.model_validate(copy.deepcopy(EQUIVALENT_PIPELINE))
    db = mongo.project_db(project.name)
    report = run_feature_pipeline(db=db, analytics=mongo.analytics_project_db(project.name),
                                  sources=mongo.analytics_db(), project=project, definition=raw,
                                  partitions=[("2024-01-10", AS_OF)], dagster_run_id=None, max_time_ms=60_000)
    assert not report.failed, [o.error for o in report.failed]
    columns = list(raw.features)
    from_tiles = published_frame(db, windowed)[columns]
    from_raw = pd.DataFrame(markers.read_committed(db, raw, AS_OF)).set_index("user_id").sort_index()[columns]
    pd.testing.assert_frame_equal(from_tiles, from_raw, check_dtype=False, rtol=1e-9)


def test_a_window_is_refused_until_the_tiles_of_its_days_are_committed(mongo, project, windowed):
    mongo.demo_db("churn")["user_events"].insert_many(copy.deepcopy(EVENTS))
    report = build(mongo, project, windowed, tile_days=[START + dt.timedelta(days=k) for k in range(DAYS) if k != 5])
    [outcome] = report.outcomes
    assert not outcome.committed and outcome.run_id is None  # refused before a run was recorded
    assert "no committed tiles of version 1 for 2024-01-06" in outcome.error
    assert "materialise churn/tiles/activity" in outcome.error


def test_a_replaced_source_day_changes_its_tiles_and_the_windows_holding_it(mongo, project, windowed):
    events = mongo.demo_db("churn")["user_events"]
    events.insert_many(copy.deepcopy(EVENTS))
    assert not build(mongo, project, windowed).failed
    events.insert_one(event("u3", at(5), "purchase", amount=7.0))  # a late event on an older day
    assert not build(mongo, project, windowed, tile_days=[dt.date(2024, 1, 5)]).failed
    got = published_frame(mongo.project_db(project.name), windowed)
    assert got.at["u3", "events_7d"] == 2 and got.at["u3", "spend_7d"] == 7.0 and got.at["u3", "days_7d"] == 2


def test_tiles_and_windows_as_assets_with_the_window_s_days_upstream(mongo, project, windowed):
    mongo.demo_db("churn")["user_events"].insert_many(copy.deepcopy(EVENTS))
    assets = build_feature_assets(project, [windowed])
    tiles_asset, feature_asset = assets
    assert tiles_asset.key == dg.AssetKey(["churn", "tiles", "activity"])
    with dg.instance_for_test() as instance:
        tiled = dg.materialize([tiles_asset], resources={"mongo": as_resource(mongo)}, instance=instance,
                               tags={"dagster/asset_partition_range_start": "2024-01-01",
                                     "dagster/asset_partition_range_end": "2024-01-10"})
        assert tiled.success
        windows = dg.materialize(assets, resources={"mongo": as_resource(mongo)}, instance=instance, partition_key="2024-01-10",
                                 selection=[feature_asset.key])
        assert windows.success
    metadata = feature_asset.specs_by_key[feature_asset.key].metadata
    schema = metadata["dagster/column_schema"]
    assert [c.name for c in schema.columns] == list(windowed.features)
    assert schema.columns[0].type == "int"
    assert published_frame(mongo.project_db(project.name), windowed).at["u1", "events_7d"] == 5
    # The window partition depends on the tiles of its 7 days, so a changed older day makes it stale.
    dep = feature_asset.specs_by_key[feature_asset.key].deps[0]
    assert dep.asset_key == tiles_asset.key and dep.partition_mapping.start_offset == -6


def test_a_tile_day_over_its_output_limit_fails_and_publishes_nothing(mongo, project, tmp_path):
    mongo.demo_db("churn")["user_events"].insert_many(copy.deepcopy(EVENTS))
    bounded = load_feature_definition(write(tmp_path, project, changed(limits={"max_documents": 1})), project)
    report = run_tiles(db=mongo.project_db(project.name), analytics=mongo.analytics_project_db(project.name),
                       sources=mongo.analytics_db(), project=project, definition=bounded,
                       partitions=day_partitions([dt.date(2024, 1, 9)]), dagster_run_id=None, max_time_ms=60_000)
    [outcome] = report.outcomes
    assert not outcome.committed and "limits.max_documents = 1" in outcome.error
    assert mongo.project_db(project.name)[bounded.tiles_target].count_documents({}) == 0


def test_one_run_of_the_demo_days_and_their_tiles_writes_the_days_before_tiling_them(mongo, churn_project):
    """The README's backfill selects the demo generator and the tiles together: the tiles wait for the days."""
    from assets.demo import build_demo_asset

    project = churn_project.model_copy(update={"demo": churn_project.demo.model_copy(update={"users": 40})})
    definitions = {d.name: d for d in load_feature_definitions(REPO / "projects" / "churn", project)}
    demo = build_demo_asset(project)
    tiles = build_tiles_asset(project, definitions["user_activity"])
    assert {d.asset_key for d in tiles.specs_by_key[tiles.key].deps} == {
        demo.key, dg.AssetKey(["churn", "sources", "user_events"])}
    with dg.instance_for_test() as instance:
        result = dg.materialize([demo, tiles], resources={"mongo": as_resource(mongo)}, instance=instance, tags={
            "dagster/asset_partition_range_start": "2024-01-01", "dagster/asset_partition_range_end": "2024-01-02"})
    assert result.success
    events = mongo.demo_db("churn")["user_events"]
    for day in ("2024-01-01", "2024-01-02"):
        as_of = dt.datetime.fromisoformat(day).replace(tzinfo=UTC) + dt.timedelta(days=1)
        marker = mongo.project_db(project.name)[markers.FEATURE_MARKERS].find_one(
            {"name": "tiles/user_activity", "as_of": as_of})
        users = len(events.distinct("user_id", {"timestamp": {"$gte": as_of - dt.timedelta(days=1), "$lt": as_of}}))
        assert users > 0 and marker["documents"] == users  # one tile per active user of the day, none missing


def test_spend_purchase_history_from_tiles_equals_its_pipeline_version(mongo, tmp_path):
    """Spend's v2 (windowed, `where` for the purchases) publishes what v1 (a pipeline definition) did."""
    from mining_platform.demo.events import generate_day, make_population
    from mining_platform.spec.project import load_project

    spend = load_project(REPO / "projects" / "spend")
    windowed = load_feature_definition(REPO / "projects/spend/features/purchase_history.yaml", spend)
    pipeline = FeatureDefinition.model_validate(
        yaml.safe_load((REPO / "tests/fixtures/purchase_history_pipeline.yaml").read_text()))
    population = make_population(60, 7)
    for k in range(6):
        mongo.demo_db("churn")["user_events"].insert_many(generate_day(population, start_date=START, day=START + dt.timedelta(
            days=k), seed=7))
    days = [START + dt.timedelta(days=k) for k in range(6)]
    db, analytics = mongo.project_db("spend"), mongo.analytics_project_db("spend")
    assert not run_tiles(db=db, analytics=analytics, sources=mongo.analytics_db(), project=spend, definition=windowed,
                         partitions=day_partitions(days), dagster_run_id=None, max_time_ms=60_000).failed
    as_of = dt.datetime(2024, 1, 7, tzinfo=UTC)
    assert not run_windows(db=db, analytics=analytics, project=spend, definition=windowed,
                           partitions=[("2024-01-06", as_of)], dagster_run_id=None, max_time_ms=60_000).failed
    raw = mongo.project_db("raw")
    assert not run_feature_pipeline(db=raw, analytics=mongo.analytics_project_db("raw"), sources=mongo.analytics_db(),
                                    project=spend, definition=pipeline, partitions=[("2024-01-06", as_of)],
                                    dagster_run_id=None, max_time_ms=60_000).failed
    columns = list(pipeline.features)
    from_tiles = pd.DataFrame(markers.read_committed(db, windowed, as_of)).set_index("user_id").sort_index()[columns]
    from_raw = pd.DataFrame(markers.read_committed(raw, pipeline, as_of)).set_index("user_id").sort_index()[columns]
    assert len(from_raw) > 20 and from_raw["purchases_30d"].sum() > 0 and from_raw["days_since_last_purchase"].isna().any()
    pd.testing.assert_frame_equal(from_tiles, from_raw, check_dtype=False, rtol=1e-9)


def test_tiles_of_a_range_in_one_pass_equal_tiles_day_by_day(mongo, project, windowed, tmp_path, monkeypatch):
    from mining_platform.features import windowed as windowed_module
    from mining_platform.features.windowed import TilesPipeline

    monkeypatch.setattr(windowed_module.TileJob, "range_days", 4)  # passes of 4 days: 01-01..04, 06..09, 10
    mongo.demo_db("churn")["user_events"].insert_many(copy.deepcopy(EVENTS))
    days = [START + dt.timedelta(days=k) for k in range(DAYS)]
    tiles = TilesPipeline(windowed)

    def tile(name, groups):
        db, analytics = mongo.project_db(name), mongo.analytics_project_db(name)
        moved = project.model_copy(update={"name": name})
        for group in groups:
            report = run_tiles(db=db, analytics=analytics, sources=mongo.analytics_db(), project=moved,
                               definition=windowed, partitions=day_partitions(group), dagster_run_id=None,
                               max_time_ms=60_000)
            assert not report.failed, [o.error for o in report.failed]
        windows = run_windows(db=db, analytics=analytics, project=moved, definition=windowed,
                              partitions=[("2024-01-10", AS_OF)], dagster_run_id=None, max_time_ms=60_000)
        assert not windows.failed, [o.error for o in windows.failed]
        per_day = {}
        for day in days:
            as_of = dt.datetime(day.year, day.month, day.day, tzinfo=UTC) + dt.timedelta(days=1)
            rows = markers.read_committed(db, tiles, as_of)
            per_day[day] = sorted(({k: v for k, v in row.items() if k != "run_id"} for row in rows),
                                  key=lambda r: (r["user_id"], r["part"]))
        return per_day, markers.read_committed(db, windowed, AS_OF), db

    by_day, window_by_day, _ = tile("byday", [[day] for day in days])
    # A gap (01-05 tiled last, alone) and passes cut at range_days.
    ranged, window_ranged, db = tile("ranged", [days[:4] + days[5:], [days[4]]])
    assert sum(len(rows) for rows in by_day.values()) > 0
    assert ranged == by_day
    key = lambda row: row["user_id"]  # noqa: E731
    strip = lambda rows: sorted(({k: v for k, v in r.items() if k != "run_id"} for r in rows), key=key)  # noqa: E731
    assert strip(window_ranged) == strip(window_by_day)
    # Each day was still its own audited run and commit marker.
    records = list(db["pipeline_runs"].find({"pipeline.name": tiles.name}))
    assert len(records) == DAYS and {r["status"] for r in records} == {"SUCCEEDED"}
    assert len({r["_id"] for r in records}) == DAYS
    assert sorted(r["trigger"]["partition"] for r in records) == [d.isoformat() for d in days]


def test_a_day_over_its_limit_in_a_range_fails_alone_and_a_pass_at_its_limit_publishes_nothing(mongo, project,
                                                                                               tmp_path):
    mongo.demo_db("churn")["user_events"].insert_many(copy.deepcopy(EVENTS))
    days = [START + dt.timedelta(days=k) for k in range(DAYS)]

    def tile_with(limit):
        name = f"limit{limit}"
        bounded = load_feature_definition(write(tmp_path / name, project, changed(limits={"max_documents": limit})),
                                          project)
        report = run_tiles(db=mongo.project_db(name), analytics=mongo.analytics_project_db(name),
                           sources=mongo.analytics_db(), project=project.model_copy(update={"name": name}),
                           definition=bounded, partitions=day_partitions(days), dagster_run_id=None,
                           max_time_ms=60_000)
        return {o.partition: (o.committed, o.documents_written, o.error) for o in report.outcomes}

    unbounded = tile_with(10_000)
    counts = {day: written for day, (committed, written, _) in unbounded.items() if committed}
    assert len(counts) == DAYS
    # A limit the busiest day is over, while the pass as a whole stays under days x (limit + 1): that day fails
    # alone, naming the limit; every other day is published.
    busiest = max(counts, key=counts.get)
    limit = counts[busiest] - 1
    assert sum(counts.values()) < (limit + 1) * DAYS  # the days are not all as busy
    result = tile_with(limit)
    failed = {day for day, (committed, _, _) in result.items() if not committed}
    assert failed == {day for day in counts if counts[day] > limit} and busiest in failed
    assert all(f"limits.max_documents = {limit}" in result[day][2] for day in failed)
    assert all(result[day][1] == counts[day] for day in counts if day not in failed)
    # A pass that reaches days x (limit + 1) documents may have cut a day short: no day of it is published.
    assert sum(counts.values()) >= 2 * DAYS
    result = tile_with(1)
    assert not any(committed for committed, _, _ in result.values())
    assert all("limits.max_documents" in error for _, _, error in result.values())
