"""The churn project's feature sets, computed in MongoDB, equal the same features computed in pandas."""

import datetime as dt

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from assets.features import build_feature_assets
from mining_platform.demo.events import generate_day, make_population
from mining_platform.demo.store import ensure_event_indexes, replace_day
from mining_platform.spec.feature_files import load_feature_definitions
from mining_platform.store import markers
from tests.conftest import REPO

DAYS = 8  # a short history keeps the embedded server fast; the 30-day windows then start before it
PARTITION_DAY = dt.date(2024, 1, DAYS)
AS_OF = dt.datetime(2024, 1, DAYS + 1, tzinfo=dt.timezone.utc)
USERS = 120


@pytest.fixture
def published_features(mongo, churn_project):
    project = churn_project.model_copy(update={"demo": churn_project.demo.model_copy(update={"users": USERS})})
    population = make_population(USERS, project.demo.seed)
    events = mongo.demo_db(project.name)[project.sources["user_events"].collection]
    ensure_event_indexes(events, entity_field=project.entity)
    for offset in range(DAYS + 1):  # the day after as_of too: it must not leak in
        day = project.start_date + dt.timedelta(days=offset)
        replace_day(events, day=day, documents=generate_day(
            population, start_date=project.start_date, day=day, seed=project.demo.seed, drift=0.0))
    definitions = {d.name: d for d in load_feature_definitions(REPO / "projects/churn", project)}
    assets = build_feature_assets(project, list(definitions.values()))
    tiles = [a.key for a in assets if a.key.path[1] == "tiles"]
    with dg.instance_for_test() as instance:
        if tiles:  # windowed definitions: every day of the window tiled once, then the window combined
            tiled = dg.materialize(assets, selection=tiles, resources={"mongo": mongo}, instance=instance, tags={
                "dagster/asset_partition_range_start": project.start_date.isoformat(),
                "dagster/asset_partition_range_end": PARTITION_DAY.isoformat()})
            assert tiled.success
        result = dg.materialize(assets, selection=[a.key for a in assets if a.key not in tiles],
                                resources={"mongo": mongo}, instance=instance, partition_key=PARTITION_DAY.isoformat())
    assert result.success
    raw = pd.DataFrame(list(events.find({"timestamp": {"$lt": AS_OF}}, {"_id": 0})))
    frames = {
        name: pd.DataFrame(markers.read_committed(mongo.project_db(project.name), d, AS_OF)).set_index("user_id").sort_index()
        for name, d in definitions.items()
    }
    return raw, frames


def test_user_activity_matches_pandas(published_features):
    raw, frames = published_features
    recent = raw["timestamp"] >= AS_OF - dt.timedelta(days=7)
    raw = raw.assign(day=raw["timestamp"].dt.floor("D"), recent=recent,
                     amount=raw["payload"].map(lambda p: p.get("amount", 0.0)),
                     purchase=raw["event_type"] == "purchase", launch=raw["event_type"] == "app_launch")
    users = raw.groupby("user_id")
    expected = pd.DataFrame({
        "events_30d": users.size(),
        "events_7d": users["recent"].sum(),
        "active_days_30d": users["day"].nunique(),
        "active_days_7d": raw[recent].groupby("user_id")["day"].nunique(),
        "sessions_30d": users["launch"].sum(),
        "sessions_7d": raw[recent].groupby("user_id")["launch"].sum(),
        "purchases_30d": users["purchase"].sum(),
        "spend_30d": raw[raw["purchase"]].groupby("user_id")["amount"].sum(),
        "days_since_last_event": (AS_OF - users["timestamp"].max()).dt.total_seconds() / 86400,
    }).fillna(0).sort_index()
    expected["events_per_session_30d"] = expected["events_30d"] / expected["sessions_30d"].clip(lower=1)
    expected["recent_activity_share"] = expected["events_7d"] / expected["events_30d"]
    got = frames["user_activity"]
    assert list(got.index) == list(expected.index)
    assert len(got) > 30
    for column in expected.columns:
        np.testing.assert_allclose(got[column].astype(float), expected[column].astype(float), rtol=1e-9,
                                   err_msg=column)


def test_module_preferences_matches_pandas(published_features):
    raw, frames = published_features
    clicks = raw[raw["event_type"] == "click"].assign(module=lambda f: f["payload"].map(lambda p: p["module_id"]))
    per_module = clicks.groupby(["user_id", "module"]).size()
    shares = per_module / per_module.groupby("user_id").transform("sum")
    ranked = per_module.groupby("user_id").apply(lambda s: np.sort(s.to_numpy())[::-1])
    expected = pd.DataFrame({
        "clicks_30d": per_module.groupby("user_id").sum(),
        "distinct_modules_30d": per_module.groupby("user_id").size(),
        "top_module_share": ranked.map(lambda r: r[0] / r.sum()),
        "top3_module_share": ranked.map(lambda r: r[:3].sum() / r.sum()),
        "module_entropy": (-shares * np.log(shares)).groupby("user_id").sum(),
        "days_since_last_click": (AS_OF - clicks.groupby("user_id")["timestamp"].max()).dt.total_seconds() / 86400,
    }).sort_index()
    got = frames["module_preferences"]
    assert list(got.index) == list(expected.index)
    for column in expected.columns:
        np.testing.assert_allclose(got[column].astype(float), expected[column].astype(float), rtol=1e-9,
                                   atol=1e-12, err_msg=column)
