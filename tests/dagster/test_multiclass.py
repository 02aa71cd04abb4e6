"""A multiclass project end to end, on data shaped unlike the demo: which of three plans an account subscribes to
next, from a JSON-lines account log (text ids, ISO times with UTC offsets, the plan as a named class) imported with
`mining-platform import`; featured, labelled, trained and gated through Dagster; served by the endpoint with a
probability per class; scored in batch; judged per class once its labels mature."""

import datetime as dt
import json
import shutil
from pathlib import Path

import dagster as dg
import httpx
import numpy as np
import pytest
from mlflow import MlflowClient

from assets.drift_report import build_drift_report_asset
from assets.features import build_feature_asset
from assets.model import build_model_asset
from assets.performance import build_performance_asset
from assets.predictions import build_predictions_asset
from assets.samples import build_samples_asset
from mining_platform.registry import aliases
from mining_platform.registry.reference import ModelReference
from mining_platform.serving.app import ServingConfig, create_app
from mining_platform.spec import load_spec
from mining_platform.spec.names import PREDICTION_LOG
from mining_platform.tools import cli
from sensors.definitions import project_definitions
from tests.conftest import REPO, wait_until
from tests.fixtures import endpoint_server
from tests.fixtures.serving import ADMIN, TOKEN, predict

UTC = dt.timezone.utc
CLASSES = ["basic", "plus", "premium"]
DAY = "2024-07-01"  # a scored day whose 14-day label window has elapsed in the file (it ends 2024-07-29)


@pytest.fixture
def plans(tmp_path, mongo, monkeypatch):
    """examples/plans as a team's project folder, with its account log imported."""
    projects = tmp_path / "projects"
    shutil.copytree(REPO / "examples" / "plans", projects / "plans")
    monkeypatch.setenv("MINING_PROJECTS_DIR", str(projects))
    monkeypatch.setenv("MINING_MONGO_URI", mongo.uri)
    monkeypatch.setenv("MINING_MONGO_DB", mongo.database)
    log = REPO / "examples" / "plans.jsonl"
    assert cli.main(["import", str(log), "--project", "plans", "--source", "events"]) == 0
    return load_spec(projects / "plans")


def failure(result) -> str:
    return "; ".join(e.step_failure_data.error.message for e in result.get_step_failure_events())


def test_which_plan_next_from_an_imported_log_to_served_class_probabilities(plans, mongo, mlflow_resource, tmp_path):
    spec = plans
    assert spec.task_type.classes == tuple(CLASSES)
    assert project_definitions(spec).resolve_all_job_defs()  # the code location the UI loads
    events = mongo.db()["account_events"]
    first = events.find_one({"kind": "subscribe"})
    assert first["plan"] in CLASSES and first["at"].tzinfo is not None and first["account"].startswith("acct-")
    resources = {"mongo": mongo, "mlflow": mlflow_resource}
    instance = dg.DagsterInstance.ephemeral()

    def run(assets, start, end=None, **kwargs):
        tags = ({"dagster/asset_partition_range_start": start, "dagster/asset_partition_range_end": end}
                if end else {})
        result = dg.materialize(assets, resources=resources, instance=instance, raise_on_error=False, tags=tags,
                                partition_key=None if end else start, **kwargs)
        assert result.success, failure(result)
        return result

    run([build_feature_asset(spec.project, spec.definitions[0])], "2024-06-01", DAY)
    samples = run([build_samples_asset(spec)], "2024-06-01", "2024-06-30")
    # Named classes became their indices in the database; no subscription in the window: not a sample.
    stored = mongo.project_db("plans")["samples_plans"].distinct("next_plan")
    assert set(stored) <= {0, 1, 2} and len(stored) == 3
    assert samples.asset_materializations_for_node("plans__samples")[0].metadata["rows_written"].value > 500

    model = dg.materialize([build_model_asset(spec)], resources=resources, instance=instance, raise_on_error=False,
                           run_config={"ops": {"plans__model": {"config": {"validation_days": 4, "embargo_days": 14}}}})
    assert model.success, failure(model)
    [gate] = model.get_asset_check_evaluations()
    assert gate.passed, gate.description
    assert gate.description.startswith("macro AUC ")
    trained = model.asset_materializations_for_node("plans__model")[0].metadata
    assert trained["macro_auc"].value > 0.6
    assert trained["accuracy"].value > trained["majority_rate"].value  # better than always the commonest plan
    assert {"mlogloss", "train_mlogloss", "plot_confusion_matrix", "plot_roc"} <= set(trained)
    version = trained["model_version"].value
    client = MlflowClient(mlflow_resource.tracking_uri, registry_uri=mlflow_resource.tracking_uri)
    tags = client.get_model_version("plans_xgb", version).tags
    assert tags["mining.task"] == "multiclass" and json.loads(tags["mining.task_parameters"]) == {"classes": CLASSES}
    run_id = client.get_model_version("plans_xgb", version).run_id
    reference = ModelReference.from_json(json.loads(
        Path(client.download_artifacts(run_id, "drift_reference.json", str(tmp_path))).read_text()))
    assert reference.scores.labels == [*CLASSES, "missing"]  # drift on the predicted class
    assert sum(reference.scores.shares) == pytest.approx(1.0)

    aliases.promote_to_champion(client, "plans_xgb", version)
    config = ServingConfig(projects=[spec], tracking_uri=mlflow_resource.tracking_uri, mongo_uri=mongo.uri,
                           database=mongo.database, admin_token=TOKEN, log_sample_rate=1.0)
    log = mongo.endpoint_db("plans")[PREDICTION_LOG]
    scored = mongo.project_db("plans")["features_account_activity"].distinct("account")[:120]
    row = {f: 0.0 for f in spec.definitions[0].features} | {"views_premium_30d": 9.0, "seats_invited_30d": 12.0,
                                                            "days_since_last_event": 1.0}
    with endpoint_server.running(create_app(config)) as url:
        wait_until(lambda: httpx.get(f"{url}/health", headers=ADMIN).json()["projects"]["plans"]["version"],
                   timeout=60, what="the multiclass champion loaded")
        by_rows = predict(url, "plans", {"rows": [row, row | {"views_premium_30d": 0.0, "views_basic_30d": 9.0,
                                                                 "seats_invited_30d": 0.0}]})
        accounts = [first["account"]]
        by_entities = predict(url, "plans", {"entities": accounts})
        for start in (0, 60):  # the log keeps up to 100 rows of a request
            assert predict(url, "plans", {"entities": scored[start:start + 60]}).status_code == 200
        wait_until(lambda: log.count_documents({"entity": {"$exists": True}}) >= 121, timeout=30,
                   what="the prediction log written")
    assert by_rows.status_code == 200, by_rows.text
    answer = by_rows.json()
    assert answer["model"] == {"name": "plans_xgb", "version": version, "task": "multiclass", "classes": CLASSES}
    assert answer["classes"] == CLASSES
    probabilities = np.array(answer["predictions"])
    assert probabilities.shape == (2, 3) and np.allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    assert answer["predicted_class"] == [CLASSES[i] for i in probabilities.argmax(axis=1)]
    assert by_entities.status_code == 200, by_entities.text
    assert len(by_entities.json()["predictions"][0]) == 3

    # The log holds each row's probabilities; drift compares the day's predicted classes with the reference's.
    assert all(len(d["score"]) == 3 for d in log.find())
    log.update_many({}, {"$set": {"time": dt.datetime(2024, 7, 1, 12, tzinfo=UTC)}})  # as if answered on DAY
    drifted = run([build_drift_report_asset(spec)], DAY).asset_materializations_for_node("plans__drift_report")
    report = drifted[0].metadata
    assert report["scores_logged"].value >= 100 and report["score_psi"].value >= 0 and "plot_score" in report
    assert 0 <= report["score_js_distance"].value <= 1 and "score_ks_statistic" not in report

    # Batch predictions store the vector; realised performance reports every class once the labels matured.
    instance.report_runless_asset_event(dg.AssetMaterialization(
        asset_key=["plans", "deployment"], metadata={"live_version": version}))
    run([build_predictions_asset(spec)], DAY)
    batch = list(mongo.project_db("plans")["predictions_plans"].find({"as_of": dt.datetime(2024, 7, 2, tzinfo=UTC)}))
    assert batch and all(len(d["score"]) == 3 and abs(sum(d["score"]) - 1) < 1e-5 for d in batch)
    judged = run([build_performance_asset(spec)], DAY)
    table = judged.asset_materializations_for_node("plans__performance")[0].metadata["metrics"].value.records
    reported = {r.data["metric"]: r.data for r in table if r.data["source"] == "batch"}
    assert {"mlogloss", "accuracy", "macro_auc"} <= set(reported)
    assert {f"{c}.{m}" for c in CLASSES for m in ("share", "recall")} <= set(reported)
    assert sum(reported[f"{c}.share"]["value"] for c in CLASSES) == pytest.approx(1.0)
    assert reported["accuracy"]["low"] <= reported["accuracy"]["value"] <= reported["accuracy"]["high"]

    # A plan the label does not name is refused with the value as written; the day's committed run stays.
    markers = mongo.project_db("plans")["sample_partitions"]
    committed = markers.find_one({"as_of": dt.datetime(2024, 6, 21, tzinfo=UTC)})
    account = mongo.project_db("plans")["samples_plans"].find_one({"run_id": committed["run_id"]})["account"]
    events.insert_one({"account": account, "at": dt.datetime(2024, 6, 21, 0, 1, tzinfo=UTC),
                       "kind": "subscribe", "plan": "enterprise"})
    refused = dg.materialize([build_samples_asset(spec)], resources=resources, instance=instance,
                             partition_key="2024-06-20", raise_on_error=False)
    assert not refused.success
    assert "label that is not a class index 0..2 or one of the names basic, plus, premium (e.g. 'enterprise')" \
        in failure(refused)
    assert markers.find_one({"as_of": dt.datetime(2024, 6, 21, tzinfo=UTC)})["run_id"] == committed["run_id"]
