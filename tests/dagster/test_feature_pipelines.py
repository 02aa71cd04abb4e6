"""Feature assets against the embedded MongoDB: publication, audit, reruns, failures and contracts."""

import copy
import datetime as dt
import time

import dagster as dg
import pytest

from assets.features import build_feature_asset
from mining_platform.demo.store import ensure_event_indexes
from mining_platform.features.pipeline import write_stages
from mining_platform.spec.definition import FeatureDefinition
from mining_platform.spec.names import FEATURE_PIPELINES
from mining_platform.spec.parameters import parameter_values, substitute
from mining_platform.store import leases, markers, runs
from tests.fixtures.definitions import AS_OF, COUNTS, EVENTS, PARTITION, UTC

EXPECTED = {"u1": {"events": 3, "clicks": 2}, "u2": {"events": 1, "clicks": 1}}


def definition(**changes) -> FeatureDefinition:
    return FeatureDefinition.model_validate({**copy.deepcopy(COUNTS), **changes})


@pytest.fixture
def churn_db(mongo, churn_project):
    """The test events in the platform database (the source), and churn's namespace, where its features go."""
    events = mongo.demo_db("churn")["user_events"]
    ensure_event_indexes(events, entity_field=churn_project.entity)
    events.insert_many([dict(e) for e in EVENTS])
    return mongo.project_db(churn_project.name)


def materialize(project, mongo, feature, *, partition=PARTITION, instance=None, tags=None):
    asset = build_feature_asset(project, feature)
    return dg.materialize(
        [asset], resources={"mongo": mongo}, partition_key=None if tags else partition,
        tags=tags, raise_on_error=False, instance=instance,
    )


def published(db, feature, as_of=AS_OF) -> dict:
    """The committed documents of a partition, by entity, without the run tag."""
    return {
        doc.pop("user_id"): {k: v for k, v in doc.items() if k not in ("run_id", "as_of", "pipeline_version")}
        for doc in markers.read_committed(db, feature, as_of)
    }


def run_records(db, **query) -> list[dict]:
    return list(db[runs.RUNS].find(query).sort("created_at", 1))


def failure_of(result) -> str:
    failure = result.failure_data_for_node(result.all_node_events[0].node_name)
    return str(failure.error) + str(getattr(failure, "user_failure_data", "") or "")


def metadata_of(result) -> dict:
    materialization = result.asset_materializations_for_node(result.all_node_events[0].node_name)[0]
    return {key: value.value for key, value in materialization.metadata.items()}


def test_a_partition_is_computed_in_the_database_and_published(churn_db, mongo, churn_project):
    feature = definition()
    result = materialize(churn_project, mongo, feature)
    assert result.success
    assert published(churn_db, feature) == EXPECTED
    marker = markers.committed_partition(churn_db, "event_counts", AS_OF)
    assert marker["partition"] == PARTITION and marker["documents"] == 2 and marker["pipeline_version"] == 1
    docs = list(churn_db[feature.target].find({}, {"_id": 0}))
    assert {d["run_id"] for d in docs} == {marker["run_id"]}
    assert all(d["as_of"] == AS_OF and d["pipeline_version"] == 1 for d in docs)

    metadata = metadata_of(result)
    assert metadata["documents_written"] == 2
    assert metadata["pipeline_hash"] == feature.content_hash
    assert metadata["first_match_uses_index"] is True, metadata["first_match_plan"]
    assert "timestamp_1" in metadata["first_match_plan"]
    assert 0 < metadata["bytes_returned"] < 1_000  # the $merge cursor comes back empty


def test_the_audit_record_of_a_run(churn_db, mongo, churn_project):
    feature = definition()
    result = materialize(churn_project, mongo, feature)
    (record,) = run_records(churn_db)
    assert record["status"] == runs.SUCCEEDED
    assert [h["status"] for h in record["status_history"]] == ["ENQUEUED", "RUNNING", "SUCCEEDED"]
    assert record["pipeline"] == {"name": "event_counts", "version": 1, "hash": feature.content_hash}
    assert record["project"] == "churn" and record["target_collection"] == "features_event_counts"
    assert record["dagster_run_id"] == result.run_id
    assert record["trigger"]["partition"] == PARTITION
    assert record["trigger"]["as_of"] == AS_OF
    assert record["trigger"]["window_start"] == AS_OF - dt.timedelta(days=3)
    stats = record["execution_stats"]
    assert stats["documents_written"] == 2 and stats["error_message"] is None
    assert stats["start_time"] <= stats["end_time"] and stats["duration_seconds"] >= 0
    assert record["lease_expires_at"] is None
    registered = churn_db[FEATURE_PIPELINES].find_one({"name": "event_counts", "version": 1})
    assert registered["hash"] == feature.content_hash and registered["pipeline"] == COUNTS["pipeline"]
    assert registered["source"] == "user_events" and registered["kind"] == "features" and registered["target_collection"] == feature.target


def test_a_rerun_publishes_identical_documents_and_removes_the_old_ones_after_a_grace_period(
        churn_db, mongo, churn_project):
    feature = definition()
    assert materialize(churn_project, mongo, feature).success
    first_run = markers.committed_partition(churn_db, "event_counts", AS_OF)["run_id"]
    assert materialize(churn_project, mongo, feature).success
    second_run = markers.committed_partition(churn_db, "event_counts", AS_OF)["run_id"]
    assert second_run != first_run
    assert published(churn_db, feature) == EXPECTED
    assert [r["status"] for r in run_records(churn_db)] == ["SUCCEEDED", "SUCCEEDED"]
    # A reader that read the first marker just before the commit still reads all of its documents ...
    assert churn_db[feature.target].count_documents({"run_id": first_run}) == 2
    superseded = churn_db[runs.RUNS].find_one({"_id": first_run})["superseded_at"]
    # ... until the grace period is over: the next run of the feature set (any partition) removes them.
    churn_db[runs.RUNS].update_one({"_id": first_run}, {"$set": {"superseded_at": superseded - markers.GRACE}})
    assert materialize(churn_project, mongo, feature, partition="2024-01-04").success
    assert churn_db[feature.target].count_documents({"run_id": first_run}) == 0
    assert churn_db[feature.target].count_documents({"as_of": AS_OF}) == 2  # one per (entity, as_of) again
    assert published(churn_db, feature) == EXPECTED


def test_a_range_run_publishes_each_day(churn_db, mongo, churn_project):
    feature = definition()
    result = materialize(churn_project, mongo, feature, tags={
        "dagster/asset_partition_range_start": "2024-01-04", "dagster/asset_partition_range_end": "2024-01-05",
    })
    assert result.success
    assert published(churn_db, feature) == EXPECTED
    assert published(churn_db, feature, AS_OF - dt.timedelta(days=1)) == {
        "u1": {"events": 2, "clicks": 2}, "u3": {"events": 1, "clicks": 1},
    }
    assert len(metadata_of(result)["partitions"].records) == 2


def test_a_run_failing_midway_keeps_the_previous_publication(churn_db, mongo, churn_project):
    assert materialize(churn_project, mongo, definition()).success
    broken = copy.deepcopy(COUNTS["pipeline"])
    broken.insert(1, {"$set": {"as_number": {"$toInt": "$event_type"}}})  # fails on the server at runtime
    result = materialize(churn_project, mongo, definition(version=2, pipeline=broken))
    assert not result.success
    failed = run_records(churn_db, status=runs.FAILED)
    assert len(failed) == 1 and failed[0]["pipeline"]["version"] == 2
    assert "click" in failed[0]["execution_stats"]["error_message"]  # the server's own reason
    marker = markers.committed_partition(churn_db, "event_counts", AS_OF)
    assert marker["pipeline_version"] == 1
    assert published(churn_db, definition()) == EXPECTED


def test_a_run_killed_after_writing_is_never_read_and_is_cleaned_up(churn_db, mongo, churn_project):
    feature = definition()
    assert materialize(churn_project, mongo, feature).success
    committed = markers.committed_partition(churn_db, "event_counts", AS_OF)["run_id"]
    # A run that wrote all of its documents and died before committing.
    lease = dt.timedelta(minutes=5)
    dead = runs.enqueue(churn_db, feature, project="churn", partition=PARTITION, as_of=AS_OF,
                        window_start=AS_OF - dt.timedelta(days=3), dagster_run_id=None, lease=lease)
    leases.start(churn_db, dead, lease=lease)
    stages = substitute(feature.pipeline, parameter_values(as_of=AS_OF, window_days=3, declared={}))
    stages += write_stages(feature, entity="user_id", as_of=AS_OF, run_id=dead, database=churn_db.name)
    mongo.demo_db("churn")["user_events"].aggregate(stages)
    assert churn_db[feature.target].count_documents({"run_id": dead}) == 2

    assert {d["run_id"] for d in markers.read_committed(churn_db, feature, AS_OF)} == {committed}
    # While its lease holds, the partition is not built a second time (the run might still be working) ...
    busy = materialize(churn_project, mongo, feature)
    assert not busy.success
    assert f"is being built by run {dead} (RUNNING" in failure_of(busy)
    assert churn_db[runs.RUNS].find_one({"_id": dead})["status"] == runs.RUNNING
    assert churn_db[feature.target].count_documents({"run_id": dead}) == 2
    # ... once the lease has run out, the next run marks it FAILED and removes its documents.
    churn_db[runs.RUNS].update_one({"_id": dead}, {"$set": {"lease_expires_at": dt.datetime.now(UTC)}})
    result = materialize(churn_project, mongo, feature)
    assert result.success
    record = churn_db[runs.RUNS].find_one({"_id": dead})
    assert record["status"] == runs.FAILED
    assert "abandoned" in record["execution_stats"]["error_message"]
    assert churn_db[feature.target].count_documents({"run_id": dead}) == 0
    assert metadata_of(result)["abandoned_runs_failed"] == [dead]
    assert published(churn_db, feature) == EXPECTED


def test_reconciliation_asks_dagster_whether_a_run_is_over(mongo):
    db = mongo.project_db("churn")
    feature = definition()
    lease = dt.timedelta(minutes=5)
    ids = {
        name: runs.enqueue(db, feature, project="churn", partition=PARTITION, as_of=AS_OF,
                           window_start=AS_OF, dagster_run_id=name, lease=lease)
        for name in ("finished-run", "live-run", "unknown-run")
    }
    verdicts = {"finished-run": True, "live-run": False, "unknown-run": None}
    abandoned = runs.reconcile_abandoned(db, "event_counts", dagster_run_finished=verdicts.get)
    assert [r["_id"] for r in abandoned] == [ids["finished-run"]]
    statuses = {r["dagster_run_id"]: r["status"] for r in db[runs.RUNS].find()}
    assert statuses == {"finished-run": "FAILED", "live-run": "ENQUEUED", "unknown-run": "ENQUEUED"}


def test_queued_partitions_of_a_live_run_are_not_taken_for_abandoned(mongo):
    db = mongo.project_db("churn")
    expired = dt.timedelta(seconds=-1)
    queued = [runs.enqueue(db, definition(), project="churn", partition=PARTITION, as_of=AS_OF, window_start=AS_OF,
                           dagster_run_id=None, lease=expired) for _ in range(2)]
    leases.renew_leases(db, queued, lease=dt.timedelta(minutes=5))
    assert runs.reconcile_abandoned(db, "event_counts") == []
    assert [r["status"] for r in run_records(db)] == ["ENQUEUED", "ENQUEUED"]


def test_contracts_fail_on_bad_data_and_nothing_is_published(churn_db, mongo, churn_project):
    pipeline = copy.deepcopy(COUNTS["pipeline"])
    pipeline[1]["$group"].update({"spend": {"$max": "$payload.amount"}, "kind": {"$first": "$event_type"}})
    feature = definition(pipeline=pipeline, features={
        "events": {"type": "int", "min": 1, "max": 2},  # u1 has 3
        "clicks": {"type": "int", "min": 0},
        "spend": {"type": "float", "max_null_rate": 0.4},  # u2 bought nothing: null rate 0.5
        "kind": {"type": "int"},  # a string
    })
    result = materialize(churn_project, mongo, feature)
    assert not result.success
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert checks["clicks_contract"].passed
    assert not checks["events_contract"].passed
    assert checks["events_contract"].metadata["violations"].value == {PARTITION: ["1 values above max 2 (highest 3)"]}
    assert not checks["spend_contract"].passed and checks["spend_contract"].metadata["null_rate"].value == 0.5
    assert not checks["kind_contract"].passed
    (record,) = run_records(churn_db)
    assert record["status"] == runs.FAILED
    message = record["execution_stats"]["error_message"]
    assert "events: 1 values above max 2" in message
    assert "spend: null rate 0.5000 exceeds max_null_rate 0.4" in message
    assert "kind: 2 values are not of type int" in message
    assert markers.committed_partition(churn_db, "event_counts", AS_OF) is None
    assert churn_db[feature.target].count_documents({}) == 0


def test_a_range_with_one_bad_day_publishes_the_good_day(churn_db, mongo, churn_project):
    feature = definition(features={"events": {"type": "int", "min": 1, "max": 2}, "clicks": {"type": "int"}})
    result = materialize(churn_project, mongo, feature, tags={
        "dagster/asset_partition_range_start": "2024-01-04", "dagster/asset_partition_range_end": "2024-01-05",
    })
    assert not result.success
    materialized = [m.partition for m in result.get_asset_materialization_events() for m in [m.materialization]]
    assert materialized == ["2024-01-04"]
    assert markers.committed_partition(churn_db, "event_counts", AS_OF - dt.timedelta(days=1))
    assert markers.committed_partition(churn_db, "event_counts", AS_OF) is None


def test_a_changed_definition_without_a_version_bump_is_refused(churn_db, mongo, churn_project):
    assert materialize(churn_project, mongo, definition()).success
    committed = markers.committed_partition(churn_db, "event_counts", AS_OF)["run_id"]
    edited = definition(description="Now counting something else.")
    result = materialize(churn_project, mongo, edited)
    assert not result.success
    failure = result.failure_data_for_node(result.all_node_events[0].node_name)
    assert "event_counts version 1 differs from the registered version 1" in str(failure.error)
    refused = run_records(churn_db, status=runs.FAILED)
    assert len(refused) == 1 and "refused before writing" in refused[0]["execution_stats"]["error_message"]
    assert churn_db[edited.target].count_documents({"run_id": refused[0]["_id"]}) == 0
    assert markers.committed_partition(churn_db, "event_counts", AS_OF)["run_id"] == committed
    assert churn_db[FEATURE_PIPELINES].find_one({"name": "event_counts", "version": 1})["hash"] == definition().content_hash

    assert materialize(churn_project, mongo, definition(version=2, description="Now counting something else.")).success
    assert churn_db[FEATURE_PIPELINES].count_documents({"name": "event_counts"}) == 2


def test_a_run_over_its_output_limits_fails_and_publishes_nothing(churn_db, mongo, churn_project):
    result = materialize(churn_project, mongo, definition(limits={"max_documents": 1}))
    assert not result.success
    assert "more than limits.max_documents = 1 documents" in failure_of(result)
    assert markers.committed_partition(churn_db, "event_counts", AS_OF) is None
    (record,) = run_records(churn_db)
    assert record["status"] == runs.FAILED and "limits.max_documents" in record["execution_stats"]["error_message"]
    # At most one past the bound was ever written, and the failed run's documents are gone.
    assert churn_db[definition().target].count_documents({}) == 0
    bytes_bound = materialize(churn_project, mongo, definition(version=2, limits={"max_bytes": 100}))
    assert "over limits.max_bytes = 100" in failure_of(bytes_bound)


def test_a_heartbeat_keeps_a_live_run_s_lease_and_a_dead_one_is_reclaimed_a_lease_later(mongo):
    db = mongo.project_db("churn")
    runs.ensure_run_indexes(db)
    lease = dt.timedelta(seconds=1)
    run_id = runs.enqueue(db, definition(), project="churn", partition=PARTITION, as_of=AS_OF, window_start=AS_OF,
                          dagster_run_id=None, lease=lease)
    leases.start(db, run_id, lease=lease)
    with leases.heartbeat(db, [run_id], lease=lease):
        time.sleep(2.5)  # well past the lease: the beats kept it
        assert runs.reconcile_abandoned(db, "event_counts") == []
    time.sleep(1.2)  # the process "died": no more beats
    assert [r["_id"] for r in runs.reconcile_abandoned(db, "event_counts")] == [run_id]
    record = db[runs.RUNS].find_one({"_id": run_id})
    assert record["status"] == runs.FAILED and "live" not in record
    # The partition is free again.
    assert runs.enqueue(db, definition(), project="churn", partition=PARTITION, as_of=AS_OF, window_start=AS_OF,
                        dagster_run_id=None, lease=lease)
