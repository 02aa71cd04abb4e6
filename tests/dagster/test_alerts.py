"""The alert sensors end to end: real failed runs (a failed gate, a day without features, a day whose labels never
came) evaluated by the project's run-failure sensor, a replica that stopped beating, a sensor's decision; each
alert received by a local webhook (signature checked) and a local SMTP server."""

import datetime as dt
import hashlib
import hmac
import json
import shutil

import dagster as dg
import pytest
import yaml

from assets.features import build_feature_asset
from assets.model import build_model_asset
from assets.samples import build_samples_asset
from mining_platform.spec import load_spec
from mining_platform.spec.names import SERVING_REPLICAS
from mining_platform.spec.replicas import heartbeat_document
from mining_platform.tools import cli
from sensors.definitions import project_definitions
from tests.conftest import REPO
from tests.fixtures.receivers import Webhook, smtp_server

UTC = dt.timezone.utc
SECRET = "alerts-test-secret"


@pytest.fixture
def receivers():
    with Webhook() as hook, smtp_server() as (port, messages):
        yield hook, port, messages


@pytest.fixture
def plans(tmp_path, mongo, monkeypatch, receivers):
    """examples/plans with alerts to the local receivers, its log imported, a gate no version can pass."""
    hook, port, _ = receivers
    projects = tmp_path / "projects"
    shutil.copytree(REPO / "examples" / "plans", projects / "plans")
    raw = yaml.safe_load((projects / "plans" / "project.yaml").read_text())
    raw["model"]["gate"]["min"] = 0.999
    raw["alerts"] = {"webhook": {"url": hook.url, "secret_env": "MINING_ALERT_SECRET"},
                     "email": {"to": ["ops@example.com"], "from": "mining@example.com",
                               "smtp": {"host": "127.0.0.1", "port": port, "starttls": False}},
                     "events": ["run_failure", "gate_failed", "retrain_failing", "samples_overdue", "replica_silent",
                                "drift_decision"],
                     "retrain_failures": 1}
    (projects / "plans" / "project.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    for name, value in {"MINING_PROJECTS_DIR": str(projects), "MINING_MONGO_URI": mongo.uri,
                        "MINING_MONGO_DB": mongo.database, "MINING_ALERT_SECRET": SECRET,
                        "MINING_DAGSTER_URL": "http://dagster.example:3000"}.items():
        monkeypatch.setenv(name, value)
    assert cli.main(["import", str(REPO / "examples" / "plans.jsonl"), "--project", "plans", "--source", "events"]) == 0
    return load_spec(projects / "plans")


def received(hook) -> list[dict]:
    """The webhook's alerts, each checked against its signature."""
    bodies = []
    for request in hook.requests:
        expected = "sha256=" + hmac.new(SECRET.encode(), request["body"], hashlib.sha256).hexdigest()
        assert request["headers"]["X-Mining-Signature"] == expected
        bodies.append(json.loads(request["body"]))
    return bodies


def failure_context(definitions, result, instance, mlflow_resource):
    name = "plans_run_failure_alert_sensor"
    return definitions.resolve_sensor_def(name), dg.build_run_status_sensor_context(
        sensor_name=name, dagster_event=result.get_run_failure_event(), dagster_instance=instance,
        dagster_run=result.dagster_run, resources={"mlflow": mlflow_resource}).for_run_failure()


def test_failed_runs_alert_with_their_step_error_and_link(plans, mongo, mlflow_resource, receivers):
    hook, _, messages = receivers
    spec, instance = plans, dg.DagsterInstance.ephemeral()
    resources = {"mongo": mongo, "mlflow": mlflow_resource}
    definitions = project_definitions(spec)

    def run(assets, start, end=None, **kwargs):
        tags = {"dagster/asset_partition_range_start": start, "dagster/asset_partition_range_end": end} if end else {}
        return dg.materialize(assets, resources=resources, instance=instance, raise_on_error=False, tags=tags,
                              partition_key=None if end or start is None else start, **kwargs)

    assert run([build_feature_asset(spec.project, spec.definitions[0])], "2024-06-01", "2024-06-20").success
    assert run([build_samples_asset(spec)], "2024-06-01", "2024-06-20").success

    # 1. A version that fails its gate: gate_failed, and with retrain_failures 1 also retrain_failing.
    model = run([build_model_asset(spec)], None, run_config={"ops": {"plans__model": {"config": {
        "validation_days": 3, "embargo_days": 7}}}})
    assert not model.success
    sensor, context = failure_context(definitions, model, instance, mlflow_resource)
    sensor(context)
    gate, failing = received(hook)
    assert gate["event"] == "gate_failed" and gate["project"] == "plans"
    assert gate["details"]["failed_steps"] == "plans__model" and "macro AUC" in gate["details"]["gate"]
    assert gate["url"] == f"http://dagster.example:3000/runs/{model.dagster_run.run_id}"
    assert failing["event"] == "retrain_failing" and failing["details"]["versions_failed_in_a_row"] == 1
    assert [str(m["Subject"]).strip() for m in messages] == [
        f"[mining-platform] plans: a trained version failed its gate (run {model.dagster_run.run_id[:8]})",
        "[mining-platform] plans: the last 1 trained versions all failed their gate"]

    # 2. A sample day without features: run_failure, naming the step and the error.
    hook.requests.clear()
    unfeatured = run([build_samples_asset(spec)], "2024-06-25")
    assert not unfeatured.success
    sensor(failure_context(definitions, unfeatured, instance, mlflow_resource)[1])
    [failure] = received(hook)
    assert failure["event"] == "run_failure" and failure["details"]["failed_steps"] == "plans__samples"
    assert failure["details"]["partition"] == "2024-06-25" and "no committed" in failure["details"]["error"]

    # 3. A day whose label window never arrived (the log ends 2024-07-29): samples_overdue, not a run failure.
    hook.requests.clear()
    assert run([build_feature_asset(spec.project, spec.definitions[0])], "2024-07-20").success
    immature = run([build_samples_asset(spec)], "2024-07-20")
    assert not immature.success
    sensor(failure_context(definitions, immature, instance, mlflow_resource)[1])
    [overdue] = received(hook)
    assert overdue["event"] == "samples_overdue" and overdue["key"] == "plans:samples_overdue:2024-07-20"
    assert overdue["details"]["label_window_closed_at"] == "2024-08-04T00:00:00+00:00"


def test_a_replica_that_stopped_beating_alerts_once(plans, mongo, receivers):
    hook, _, _ = receivers
    now = dt.datetime.now(UTC)
    replicas = mongo.endpoint_db("plans")[SERVING_REPLICAS]
    for replica, at in (("alive", now), ("crashed", now - dt.timedelta(minutes=10))):
        replicas.insert_one(heartbeat_document(replica, host=f"pod-{replica}", pid=1, started_at=now, now=at,
                                               interval_seconds=5.0, served={}, errors={}))
    sensor = project_definitions(plans).resolve_sensor_def("plans_replica_alert_sensor")
    first = sensor(dg.build_sensor_context(resources={"mongo": mongo}))
    [alert] = received(hook)
    assert alert["event"] == "replica_silent" and alert["details"]["replica"] == "crashed"
    again = sensor(dg.build_sensor_context(cursor=first.cursor, resources={"mongo": mongo}))
    assert len(hook.requests) == 1 and "none newly" in again.skip_reason.skip_message


def test_a_decision_of_a_sensor_alerts_when_asked_for(plans, mongo, mlflow_resource, receivers):
    hook, _, _ = receivers
    instance = dg.DagsterInstance.ephemeral()
    decided = dg.materialize([build_feature_asset(plans.project, plans.definitions[0])], instance=instance,
                             resources={"mongo": mongo}, partition_key="2024-06-01",
                             tags={"mining.cause": "drift", "mining.drift.partition": "2024-06-01"})
    assert decided.success
    [started] = [entry.dagster_event for entry in instance.all_logs(
        decided.dagster_run.run_id, of_type=dg.DagsterEventType.RUN_START)]
    sensor = project_definitions(plans).resolve_sensor_def("plans_decision_alert_sensor")
    sensor(dg.build_run_status_sensor_context(sensor_name="plans_decision_alert_sensor", dagster_event=started,
                                              dagster_instance=instance, dagster_run=decided.dagster_run))
    [alert] = received(hook)
    assert alert["event"] == "drift_decision" and alert["details"]["mining.drift.partition"] == "2024-06-01"
