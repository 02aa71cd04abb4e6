"""Point-in-time samples against the embedded MongoDB: the join, the label, leakage, refusals, reruns."""

import copy
import datetime as dt

import dagster as dg
import pytest

from assets.samples import build_samples_asset
from mining_platform.demo.store import ensure_event_indexes
from mining_platform.features.pipeline import run_feature_pipeline
from mining_platform.samples.build import build_sample_partitions
from mining_platform.samples.pipeline import SamplesPipeline
from mining_platform.sources.observe import watermark
from mining_platform.spec import ProjectSpec
from mining_platform.spec.definition import FeatureDefinition
from mining_platform.spec.names import SAMPLE_MARKERS
from mining_platform.store import markers, runs
from tests.fixtures.definitions import AS_OF, COUNTS, PARTITION, SPEND, UTC, at
from tests.fixtures.mongo import as_resource
from tests.fixtures.sample_partitions import committed_rows, publish_features
from tests.fixtures.specs import churn_label, make_spec

# Features see [01-03, 01-06) at AS_OF; the label window is [01-06, 01-09).



# Each user is built so that a leak would show: a future event that a feature must not
# count, or a past event that the label must not see.
EVENTS = {
    "u1": [at(4), at(5, event_type="purchase", amount=10.0),
           at(6, 1, event_type="purchase", amount=500.0)],         # future purchase: not in spend, makes u1 active
    "u2": [at(5, 23, 59)],                                          # last seen just before as_of: churned
    "u3": [at(4), at(6, 0, 0)],                                     # event exactly at as_of belongs to the label
    "u4": [at(3, 0, 0), at(9, 0, 0)],                               # first event exactly at window_start; next one
                                                                    # exactly at the label window's end: churned
    "u5": [at(7)],                                                  # no features, only future: not a sample
    "u6": [at(2, 23, 59), at(8, 23, 59)],                           # before the feature window: not a sample
}
EXPECTED = {
    "u1": {"events": 2, "clicks": 1, "spend": 10.0, "churned": 0},
    "u2": {"events": 1, "clicks": 1, "spend": None, "churned": 1},
    "u3": {"events": 1, "clicks": 1, "spend": None, "churned": 0},
    "u4": {"events": 1, "clicks": 1, "spend": None, "churned": 1},
}


@pytest.fixture
def project(churn_project):
    return churn_project


@pytest.fixture
def spec(project):
    definitions = (FeatureDefinition.model_validate(copy.deepcopy(COUNTS)), FeatureDefinition.model_validate(copy.deepcopy(SPEND)))
    return make_spec(project, definitions, churn_label(horizon_days=3))


@pytest.fixture
def samples(spec):
    return SamplesPipeline(spec)


@pytest.fixture
def churn_db(mongo, project):
    """The events in the platform database (the source); returns the project's namespace, where it writes."""
    source = mongo.demo_db("churn")["user_events"]
    ensure_event_indexes(source, entity_field=project.entity)
    source.insert_many([{"user_id": user, **e} for user, events in EVENTS.items() for e in events])
    return mongo.project_db(project.name)


def build(mongo, spec, *, partitions=((PARTITION, AS_OF),)):
    return build_sample_partitions(
        db=mongo.project_db(spec.name), analytics=mongo.analytics_project_db(spec.name),
        sources=mongo.analytics_db(), spec=spec, partitions=list(partitions),
        dagster_run_id=None, max_time_ms=60_000)


def test_samples_join_committed_features_and_label_strictly_point_in_time(mongo, spec, samples, churn_db):
    publish_features(mongo, spec)
    [outcome] = build(mongo, spec)
    assert outcome.committed, outcome.error
    assert (outcome.rows, outcome.positives) == (4, 2)

    rows = committed_rows(churn_db, spec)
    assert {user: {k: row.get(k) for k in ("events", "clicks", "spend", "churned")} for user, row in rows.items()} == EXPECTED
    versions = {d.name: d.version for d in spec.definitions}
    assert all(row["feature_versions"] == versions and row["as_of"] == AS_OF for row in rows.values())

    marker = markers.committed_partition(churn_db, samples.name, AS_OF, markers=SAMPLE_MARKERS)
    assert marker["run_id"] == outcome.run_id and marker["positives"] == 2
    assert marker["entity_types"] == ["string"] and marker["label_mean"] == 0.5
    assert marker["label"]["window_end"] == AS_OF + dt.timedelta(days=3)
    assert {name: built["run_id"] for name, built in marker["features"].items()} == {
        d.name: markers.committed_partition(churn_db, d.name, AS_OF)["run_id"] for d in spec.definitions
    }
    record = churn_db[runs.RUNS].find_one({"_id": outcome.run_id})
    assert record["pipeline"]["name"] == "churn/samples" and record["status"] == runs.SUCCEEDED
    assert record["execution_stats"]["documents_written"] == 4


def test_rerun_publishes_again_and_leaves_one_run_after_the_grace_period(mongo, spec, samples, churn_db):
    publish_features(mongo, spec)
    first = build(mongo, spec)[0].run_id
    # A later event of u2 inside the label window flips its label on the rebuild.
    mongo.demo_db("churn")["user_events"].insert_one({"user_id": "u2", **at(8)})
    second = build(mongo, spec)[0].run_id
    assert first != second
    assert committed_rows(churn_db, spec)["u2"]["churned"] == 0
    # The superseded build stays readable for the grace period (a training read may hold its marker) ...
    assert set(churn_db[samples.target].distinct("run_id")) == {first, second}
    churn_db[runs.RUNS].update_one({"_id": first}, {"$set": {"superseded_at": dt.datetime(2000, 1, 1, tzinfo=UTC)}})
    build(mongo, spec)  # ... and the next build after it removes it
    assert first not in set(churn_db[samples.target].distinct("run_id"))


def test_a_label_window_the_source_has_not_passed_is_refused_until_its_events_arrive(mongo, spec, samples, churn_db):
    publish_features(mongo, spec)
    # Without u4's event at 01-09 00:00 the newest event is u6's at 01-08 23:59: the window [01-06, 01-09) is open.
    late = mongo.demo_db("churn")["user_events"].find_one_and_delete({"user_id": "u4", "timestamp": at(9, 0, 0)["timestamp"]})
    [outcome] = build(mongo, spec)
    assert not outcome.committed and outcome.run_id is None
    assert "label window [2024-01-06, 2024-01-09) has not fully elapsed in source user_events" in outcome.error
    assert "holds events up to 2024-01-08T23:59:00+00:00 (complete through 2024-01-07)" in outcome.error
    assert "at or after 2024-01-09T00:00:00+00:00" in outcome.error and "materialise" not in outcome.error.lower()
    assert churn_db[samples.target].count_documents({}) == 0
    assert churn_db[SAMPLE_MARKERS].count_documents({}) == 0
    assert churn_db[runs.RUNS].count_documents({"pipeline.name": samples.name}) == 0

    mongo.demo_db("churn")["user_events"].insert_one(late)  # the late day's events arrive
    [outcome] = build(mongo, spec)
    assert outcome.committed, outcome.error
    assert committed_rows(churn_db, spec)["u4"]["churned"] == 1


def test_lateness_days_hold_a_window_open_past_its_end(mongo, project, spec, churn_db):
    publish_features(mongo, spec)
    source = project.sources["user_events"].model_copy(update={"lateness_days": 1})
    late = make_spec(project.model_copy(update={"sources": {"user_events": source}}), spec.definitions,
                     spec.label_definition)
    [outcome] = build(mongo, late)
    assert not outcome.committed and "plus lateness_days 1" in outcome.error
    mongo.demo_db("churn")["user_events"].insert_one({"user_id": "u9", **at(10, 0, 0)})
    assert build(mongo, late)[0].committed


def test_one_far_future_event_does_not_mature_a_label_window(mongo, spec, samples, churn_db):
    """A row dated 9999-12-31 (or a clock far ahead) is ignored by the watermark, and the refusal says so."""
    publish_features(mongo, spec)
    events = mongo.demo_db("churn")["user_events"]
    events.find_one_and_delete({"user_id": "u4", "timestamp": at(9, 0, 0)["timestamp"]})
    events.insert_one({"user_id": "u7", "type": "click", "timestamp": dt.datetime(9999, 12, 31, tzinfo=dt.timezone.utc)})
    source = spec.project.sources["user_events"]
    assert watermark(mongo.db(), source) == at(8, 23, 59)["timestamp"]
    [outcome] = build(mongo, spec)
    assert not outcome.committed
    assert "holds events up to 2024-01-08T23:59:00+00:00" in outcome.error
    assert "1 event(s) dated after" in outcome.error and "up to 9999-12-31T00:00:00+00:00, are ignored" in outcome.error
    # An event within the tolerance counts: the clocks of two machines differ by seconds, not years.
    soon = dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=30)
    events.insert_one({"user_id": "u8", "type": "click", "timestamp": soon})
    assert abs(watermark(mongo.db(), source) - soon) < dt.timedelta(milliseconds=1)


def test_partition_without_committed_features_is_refused(mongo, spec, samples, churn_db):
    run_feature_pipeline(
        db=mongo.project_db(spec.project.name), analytics=mongo.analytics_project_db(spec.project.name),
        sources=mongo.analytics_db(), project=spec.project, definition=spec.definitions[0],
        partitions=[(PARTITION, AS_OF)], dagster_run_id=None, max_time_ms=60_000)
    [outcome] = build(mongo, spec)
    assert not outcome.committed
    assert "no committed features for purchase_totals" in outcome.error
    assert "churn/features/purchase_totals" in outcome.error
    assert churn_db[samples.target].count_documents({}) == 0


def test_label_clashing_with_a_feature_is_refused(project, spec):
    with pytest.raises(ValueError, match="label 'clicks' is a feature of event_counts"):
        ProjectSpec(project=project, definitions=spec.definitions, label_definition=churn_label(3, name="clicks"))


def test_samples_asset_commits_mature_days_and_fails_naming_the_immature_one(mongo, spec, samples, churn_db):
    day_before = (PARTITION, AS_OF), ("2024-01-04", AS_OF - dt.timedelta(days=1))
    publish_features(mongo, spec, partitions=day_before)
    # Events up to 01-08 00:00 only: enough for 2024-01-04's label window [01-05, 01-08), not for 2024-01-05's.
    # No Dagster materialisation or observation of the source: the samples read its watermark themselves.
    mongo.demo_db("churn")["user_events"].delete_many({"timestamp": {"$gt": dt.datetime(2024, 1, 8, tzinfo=UTC)}})
    mongo.demo_db("churn")["user_events"].insert_one({"user_id": "u7", **at(8, 0, 0)})
    instance = dg.DagsterInstance.ephemeral()
    asset = build_samples_asset(spec)
    result = dg.materialize([asset], resources={"mongo": as_resource(mongo)}, instance=instance, raise_on_error=False,
                            tags={"dagster/asset_partition_range_start": "2024-01-04",
                                  "dagster/asset_partition_range_end": PARTITION})
    assert not result.success
    failure = result.get_step_failure_events()[0].step_failure_data.error.message
    assert "1 of 2 sample partitions were not published" in failure
    assert "complete once it holds an event at or after 2024-01-09" in failure
    materialized = [e.materialization.partition for e in result.get_asset_materialization_events()]
    assert materialized == ["2024-01-04"]
    assert markers.committed_partition(churn_db, samples.name, AS_OF - dt.timedelta(days=1), markers=SAMPLE_MARKERS)
    assert markers.committed_partition(churn_db, samples.name, AS_OF, markers=SAMPLE_MARKERS) is None
