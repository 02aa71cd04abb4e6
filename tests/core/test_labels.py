"""Label definitions in the database: defaults, regression labels, invalid values, versions, other databases."""

import copy
import datetime as dt

import pytest

from mining_platform.samples.build import build_sample_partitions
from mining_platform.spec.definition import FeatureDefinition
from mining_platform.spec.names import FEATURE_PIPELINES, labels_collection
from mining_platform.store import runs
from mining_platform.store.versions import FeatureVersionConflict, register
from tests.fixtures.definitions import AS_OF, COUNTS, PARTITION, SPEND, at
from tests.fixtures.sample_partitions import committed_rows, publish_features
from tests.fixtures.specs import churn_label, make_spec

UTC = dt.timezone.utc

# Purchases in the label window [01-06, 01-09) decide the labels below.
EVENTS = {
    "u1": [at(4), at(6, 10, event_type="purchase", amount=30.0), at(7, 9, event_type="purchase", amount=12.5)],
    "u2": [at(5), at(7)],                                 # active but buys nothing in the window
    "u3": [at(4, event_type="purchase", amount=99.0)],    # bought before as_of only
    "u4": [at(9, 0, 0)],                                  # no features: never a sample; closes the window
}
SPEND_LABEL = {
    "name": "spend_next_3d",
    "version": 1,
    "description": "Spend in the three days from as_of.",
    "owner": "tests",
    "source": "user_events",
    "horizon_days": 3,
    "pipeline": [
        {"$match": {"timestamp": {"$gte": {"$param": "as_of"}, "$lt": {"$param": "horizon_end"}},
                    "event_type": "purchase"}},
        {"$group": {"_id": "$user_id", "value": {"$sum": "$payload.amount"}}},
    ],
    "default": 0,
}


def definitions():
    return (FeatureDefinition.model_validate(copy.deepcopy(COUNTS)),
            FeatureDefinition.model_validate(copy.deepcopy(SPEND)))


def task(project, name):
    return project.model_copy(update={"model": project.model.model_copy(update={
        "task": name, "gate": project.model.gate.model_copy(update={"metric": "rmse", "min": None, "max": 100.0})
        if name == "regression" else project.model.gate})})


def insert_events(db, events=EVENTS):
    db["user_events"].insert_many([{"user_id": user, **e} for user, evs in events.items() for e in evs])


def build(mongo, spec):
    [outcome] = build_sample_partitions(
        db=mongo.project_db(spec.name), analytics=mongo.analytics_project_db(spec.name),
        sources=mongo.analytics_db(), spec=spec,
        partitions=[(PARTITION, AS_OF)], dagster_run_id=None, max_time_ms=60_000)
    return outcome


def labels_of(mongo, spec):
    return {user: row[spec.label] for user, row in committed_rows(mongo.project_db(spec.name), spec).items()}


def test_a_regression_label_is_the_value_of_the_definition_and_default_fills_the_rest(mongo, churn_project):
    insert_events(mongo.demo_db("churn"))
    spec = make_spec(task(churn_project, "regression"), definitions(), churn_label(**SPEND_LABEL))
    publish_features(mongo, spec)
    outcome = build(mongo, spec)
    assert outcome.committed, outcome.error
    assert labels_of(mongo, spec) == {"u1": 42.5, "u2": 0, "u3": 0}
    assert outcome.label_mean == pytest.approx(42.5 / 3)
    # The label documents were scratch: nothing of the run is left in labels_<p>.
    assert mongo.project_db(spec.name)[labels_collection(spec.name)].count_documents({}) == 0
    registered = mongo.project_db(spec.name)[FEATURE_PIPELINES].find_one({"_id": "labels/spend_next_3d@1"})
    assert registered["kind"] == "label" and registered["default"] == 0 and registered["horizon_days"] == 3


def test_a_null_default_leaves_unlabelled_entities_out(mongo, churn_project):
    insert_events(mongo.demo_db("churn"))
    spec = make_spec(task(churn_project, "regression"), definitions(), churn_label(**{**SPEND_LABEL, "default": None}))
    publish_features(mongo, spec)
    assert build(mongo, spec).committed
    assert labels_of(mongo, spec) == {"u1": 42.5}


def test_a_boolean_label_is_stored_as_0_or_1(mongo, churn_project):
    insert_events(mongo.demo_db("churn"))
    bought = {**SPEND_LABEL, "name": "buys", "default": 0,
              "pipeline": SPEND_LABEL["pipeline"][:1] + [{"$group": {"_id": "$user_id", "value": {"$max": True}}}]}
    spec = make_spec(churn_project, definitions(), churn_label(**bought))
    publish_features(mongo, spec)
    outcome = build(mongo, spec)
    assert outcome.committed, outcome.error
    assert labels_of(mongo, spec) == {"u1": 1, "u2": 0, "u3": 0} and outcome.positives == 1


def test_a_binary_label_outside_0_and_1_fails_the_run_and_publishes_nothing(mongo, churn_project):
    insert_events(mongo.demo_db("churn"))
    spec = make_spec(churn_project, definitions(), churn_label(**{**SPEND_LABEL, "name": "spent"}))
    publish_features(mongo, spec)
    outcome = build(mongo, spec)
    assert not outcome.committed
    assert "1 of 3 rows have a 'spent' label that is not 0 or 1 (e.g. 42.5)" in outcome.error
    assert mongo.project_db(spec.name)[spec.samples_collection].count_documents({}) == 0
    assert mongo.project_db(spec.name)[runs.RUNS].find_one({"_id": outcome.run_id})["status"] == runs.FAILED


def test_a_label_version_is_immutable(mongo, churn_project):
    insert_events(mongo.demo_db("churn"))
    spec = make_spec(churn_project, definitions(), churn_label(horizon_days=3))
    publish_features(mongo, spec)
    assert build(mongo, spec).committed
    edited = make_spec(churn_project, definitions(), churn_label(horizon_days=3, description="Edited in place."))
    with pytest.raises(FeatureVersionConflict, match="churned version 1 differs from the registered version 1"):
        build(mongo, edited)  # refused before anything is written
    assert mongo.project_db(spec.name)[runs.RUNS].count_documents({"status": runs.FAILED}) == 1
    with pytest.raises(FeatureVersionConflict, match="bump `version`"):
        register(mongo.project_db("churn"), edited.label_definition, project="churn")
    assert build(mongo, make_spec(churn_project, definitions(),
                                  churn_label(horizon_days=3, version=2, description="Edited."))).committed


def test_a_source_in_another_database_is_read_there_and_never_written(mongo, churn_project):
    shop = mongo.client()[f"shop_{mongo.database}"]
    try:
        insert_events(shop)
        source = churn_project.sources["user_events"].model_copy(update={"database": shop.name, "demo_of": None})
        project = task(churn_project.model_copy(update={"sources": {"user_events": source}}), "regression")
        spec = make_spec(project, definitions(), churn_label(**SPEND_LABEL))
        before = sorted(map(str, shop["user_events"].find()))
        publish_features(mongo, spec)
        outcome = build(mongo, spec)
        assert outcome.committed, outcome.error
        assert labels_of(mongo, spec) == {"u1": 42.5, "u2": 0, "u3": 0}
        assert committed_rows(mongo.project_db(spec.name), spec)["u2"]["events"] == 1  # features computed over there, stored here
        assert sorted(map(str, shop["user_events"].find())) == before
        assert shop.list_collection_names() == ["user_events"]
    finally:
        mongo.client().drop_database(shop.name)
