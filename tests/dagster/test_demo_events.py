"""The demo event generator and the opt-in `<p>/demo/<source>` asset."""

import datetime as dt
from collections import Counter

import dagster as dg
import pytest
from pymongo.errors import PyMongoError

from assets.demo import build_demo_asset
from mining_platform.demo.events import DRIFT_MODULES, MODULES, generate_day, make_population
from mining_platform.demo.store import ForeignCollection, claim_collection, day_bounds, replace_day

START = dt.date(2024, 1, 1)
DAY = dt.date(2024, 2, 5)


@pytest.fixture(scope="module")
def population():
    return make_population(2000, 7)


def day_events(population, day=DAY, drift=0.0):
    return generate_day(population, start_date=START, day=day, seed=7, drift=drift)


# --- the generator (pure) ---------------------------------------------------------


def test_a_day_is_deterministic_and_lies_within_that_day(population):
    events = day_events(population)
    assert events == day_events(population)
    start, end = day_bounds(DAY)
    assert all(start <= e["timestamp"] < end for e in events)
    assert len({e["_id"] for e in events}) == len(events)
    assert [e["timestamp"] for e in events] == sorted(e["timestamp"] for e in events)
    assert all(e["timestamp"].microsecond % 1000 == 0 for e in events)  # BSON keeps milliseconds


def test_events_have_the_documented_shape(population):
    events = day_events(population)
    kinds = Counter(e["event_type"] for e in events)
    assert set(kinds) == {"app_launch", "click", "purchase"}
    assert kinds["click"] > kinds["app_launch"] > kinds["purchase"] > 0
    for e in events:
        assert set(e) == {"_id", "user_id", "timestamp", "event_type", "session_id", "payload"}
        if e["event_type"] == "click":
            assert e["payload"]["module_id"] in MODULES
        if e["event_type"] == "purchase":
            assert e["payload"]["amount"] > 0
    # Every session opens with its app launch.
    first_of_session = {}
    for e in events:
        first_of_session.setdefault(e["session_id"], e["event_type"])
    assert set(first_of_session.values()) == {"app_launch"}


def test_population_has_mixed_engagement_and_churn(population):
    events_per_user = Counter(e["user_id"] for e in day_events(population))
    assert max(events_per_user.values()) > 10 * min(events_per_user.values())
    offset = (DAY - START).days
    churned = {str(u) for u, c in zip(population.user_ids, population.churn_day) if c <= offset}
    assert len(churned) > 50
    assert not churned & set(events_per_user), "a churned user produced events"
    not_yet = {str(u) for u, s in zip(population.user_ids, population.signup_day) if s > offset}
    assert not not_yet & set(events_per_user), "a user produced events before signing up"


def test_users_go_quiet_before_they_churn(population):
    """Activity in the weeks before churn falls: the signal a churn model learns."""
    churn_offsets = {str(u): c for u, c in zip(population.user_ids, population.churn_day)}
    near, far = [], []
    for k in range(30, 45):
        day = START + dt.timedelta(days=k)
        for user, n in Counter(e["user_id"] for e in day_events(population, day)).items():
            days_left = churn_offsets[user] - k
            (near if days_left <= 7 else far if days_left > 60 else []).append(n)
    assert sum(near) / len(near) < 0.6 * sum(far) / len(far)


def test_drift_shifts_the_days_behaviour(population):
    def stats(events):
        kinds = Counter(e["event_type"] for e in events)
        clicks = [e["payload"]["module_id"] for e in events if e["event_type"] == "click"]
        amounts = [e["payload"]["amount"] for e in events if e["event_type"] == "purchase"]
        return {
            "sessions": kinds["app_launch"],
            "new_module_share": sum(m in {MODULES[i] for i in DRIFT_MODULES} for m in clicks) / len(clicks),
            "mean_amount": sum(amounts) / len(amounts),
        }

    quiet, drifted = stats(day_events(population)), stats(day_events(population, drift=1.0))
    assert drifted["sessions"] < 0.7 * quiet["sessions"]
    assert drifted["new_module_share"] > 2 * quiet["new_module_share"]
    assert drifted["mean_amount"] > 2 * quiet["mean_amount"]
    with pytest.raises(ValueError, match="drift must be between 0 and 1"):
        day_events(population, drift=1.5)


# --- writing days into MongoDB ----------------------------------------------------


def stored_day(collection, day):
    start, end = day_bounds(day)
    return list(collection.find({"timestamp": {"$gte": start, "$lt": end}}).sort("_id", 1))


def test_replace_day_failing_midway_keeps_the_old_day(mongo, population):
    events = mongo.demo_db("churn")["user_events"]
    replace_day(events, day=DAY, documents=day_events(population))
    before = stored_day(events, DAY)
    broken = day_events(population, drift=0.5)
    broken.append(dict(broken[0]))  # duplicate _id: the insert fails after the delete ran
    with pytest.raises(PyMongoError):
        replace_day(events, day=DAY, documents=broken)
    assert stored_day(events, DAY) == before


def test_replace_day_refuses_documents_of_another_day(mongo, population):
    events = mongo.demo_db("churn")["user_events"]
    stray = day_events(population, day=DAY + dt.timedelta(days=1))[:1]
    with pytest.raises(ValueError, match=f"lie outside {DAY}"):
        replace_day(events, day=DAY, documents=day_events(population) + stray)
    assert events.count_documents({}) == 0


# --- the asset --------------------------------------------------------------------


def materialize_day(asset, mongo, day: dt.date, drift: float | None = None) -> dg.ExecuteInProcessResult:
    run_config = {"ops": {"churn__demo__user_events": {"config": {"drift": drift}}}} if drift is not None else None
    return dg.materialize(
        [asset], resources={"mongo": mongo}, partition_key=day.isoformat(), run_config=run_config,
        raise_on_error=False,
    )


def test_partition_writes_its_day_and_a_rerun_is_identical(mongo, small_project):
    asset = build_demo_asset(small_project)
    events = mongo.demo_db("churn")["user_events"]
    other_day = DAY - dt.timedelta(days=1)

    assert materialize_day(asset, mongo, other_day).success
    other_before = stored_day(events, other_day)
    first = materialize_day(asset, mongo, DAY)
    assert first.success
    written = stored_day(events, DAY)
    metadata = first.asset_materializations_for_node("churn__demo__user_events")[0].metadata
    assert metadata["events_written"].value == len(written) > 0
    assert metadata["days"].value == DAY.isoformat()
    assert metadata["events_replaced"].value == 0
    assert events.count_documents({}) == len(written) + len(other_before)

    rerun = materialize_day(asset, mongo, DAY)
    assert rerun.success
    assert rerun.asset_materializations_for_node("churn__demo__user_events")[0].metadata[
        "events_replaced"
    ].value == len(written)
    assert stored_day(events, DAY) == written
    assert stored_day(events, other_day) == other_before
    assert {"timestamp_1", "user_id_1_timestamp_1"} <= set(events.index_information())


def test_drift_config_changes_only_that_day(mongo, small_project):
    asset = build_demo_asset(small_project)
    events = mongo.demo_db("churn")["user_events"]
    other_day = DAY + dt.timedelta(days=1)
    assert materialize_day(asset, mongo, other_day).success
    assert materialize_day(asset, mongo, DAY).success
    quiet, other = stored_day(events, DAY), stored_day(events, other_day)

    assert materialize_day(asset, mongo, DAY, drift=1.0).success
    drifted = stored_day(events, DAY)
    assert drifted != quiet
    assert Counter(e["event_type"] for e in drifted)["app_launch"] < Counter(
        e["event_type"] for e in quiet
    )["app_launch"]
    assert stored_day(events, other_day) == other


def test_a_range_of_days_is_one_run_that_writes_each_day(mongo, small_project):
    asset = build_demo_asset(small_project)
    assert asset.backfill_policy == dg.BackfillPolicy.single_run()
    events = mongo.demo_db("churn")["user_events"]
    days = [DAY + dt.timedelta(days=i) for i in range(3)]
    result = dg.materialize(
        [asset], resources={"mongo": mongo},
        tags={"dagster/asset_partition_range_start": days[0].isoformat(),
              "dagster/asset_partition_range_end": days[-1].isoformat()},
    )
    assert result.success
    metadata = result.asset_materializations_for_node("churn__demo__user_events")[0].metadata
    per_day = {day.isoformat(): len(stored_day(events, day)) for day in days}
    assert metadata["events_per_day"].value == per_day
    assert metadata["events_written"].value == sum(per_day.values()) == events.count_documents({})
    assert all(per_day.values())
    # A range writes what single-day runs write.
    alone = generate_day(make_population(300, 7), start_date=START, day=days[1], seed=7)
    assert stored_day(events, days[1]) == sorted(alone, key=lambda e: e["_id"])


def test_invalid_drift_config_fails_and_writes_nothing(mongo, small_project):
    asset = build_demo_asset(small_project)
    result = materialize_day(asset, mongo, DAY, drift=2.0)
    assert not result.success
    failure = result.get_step_failure_events()[0].step_failure_data.error
    assert "drift" in str(failure) and "less than or equal to 1" in str(failure)
    assert mongo.demo_db("churn")["user_events"].count_documents({}) == 0


def test_the_generator_refuses_a_collection_it_did_not_create_and_leaves_it_intact(mongo, small_project):
    events = mongo.demo_db("churn")["user_events"]
    events.insert_one({"_id": "real-1", "user_id": 42, "timestamp": dt.datetime(2024, 2, 5, 12, tzinfo=dt.timezone.utc)})
    result = materialize_day(build_demo_asset(small_project), mongo, DAY)
    assert not result.success
    failure = result.failure_data_for_node("churn__demo__user_events").error.message
    assert "already holds documents the demo generator did not write" in failure and "real-1" in failure
    assert list(events.find()) == [{"_id": "real-1", "user_id": 42,
                                    "timestamp": dt.datetime(2024, 2, 5, 12, tzinfo=dt.timezone.utc)}]


def test_a_claimed_collection_is_only_the_claiming_projects(mongo):
    events = mongo.demo_db("churn")["shared_events"]
    claim_collection(events, project="churn")
    claim_collection(events, project="churn")  # its own: fine, again and again
    events.insert_one({"x": 1})
    claim_collection(events, project="churn")
    assert mongo.demo_db("churn")["demo_collections"].find_one()["project"] == "churn"  # the claim lives beside it
    with pytest.raises(ForeignCollection, match="holds the demo events of project 'churn'"):
        claim_collection(events, project="other")


def test_written_days_are_recorded_as_observations_of_the_source(mongo, small_project):
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize([build_demo_asset(small_project)], resources={"mongo": mongo},
                            partition_key=DAY.isoformat(), instance=instance)
    assert result.success
    observed = instance.fetch_observations(dg.AssetKey(["churn", "sources", "user_events"]), limit=10).records
    assert [r.partition_key for r in observed] == [DAY.isoformat()]
    written = len(stored_day(mongo.demo_db("churn")["user_events"], DAY))
    assert observed[0].asset_observation.data_version.startswith(f"{written} events, newest ")
