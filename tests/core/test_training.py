"""Training, MLflow logging and the promotion gate, on synthetic committed samples and a temporary MLflow."""

import dataclasses
import datetime as dt
import json
import os
import uuid

import dagster as dg
import mlflow
import pyarrow as pa
import pytest
from mlflow import MlflowClient

from assets.model import GATE_CHECK, build_model_asset
from mining_platform.registry import aliases
from mining_platform.registry.client import tracking
from mining_platform.spec import ProjectSpec, load_spec
from mining_platform.spec.model_config import GateConfig, TrainingConfig
from mining_platform.spec.names import SAMPLE_MARKERS
from mining_platform.training.booster import resolve_device
from mining_platform.training.dataset import TrainingDataError
from mining_platform.training.model import train_and_register
from mining_platform.training.partition_cache import PartitionCache
from tests.conftest import REPO
from tests.fixtures.mongo import as_resource
from tests.fixtures.sample_partitions import publish_synthetic_samples

DAYS = [dt.date(2024, 1, 1) + dt.timedelta(days=i) for i in range(8)]
FAST = TrainingConfig(validation_days=1, embargo_days=3, early_stopping_rounds=10)


def make_spec(churn_project, gate: dict | None = None, **model_changes) -> ProjectSpec:
    """The churn project, feature sets and label, under a registered model name of the test's own."""
    changes = {"name": f"churn_{uuid.uuid4().hex[:8]}", **model_changes}
    if gate:
        changes["gate"] = GateConfig.model_validate({**churn_project.model.gate.model_dump(exclude_none=True), **gate})
    project = churn_project.model_copy(update={"model": churn_project.model.model_copy(update=changes)})
    return dataclasses.replace(load_spec(REPO / "projects" / "churn"), project=project)


def train(mongo, spec, mlflow_resource, training=FAST, sample_cache=None):
    return train_and_register(db=mongo.project_db(spec.name), spec=spec, training=training, tracking_uri=mlflow_resource.tracking_uri,
                              artifact_location=mlflow_resource.artifact_location, sample_cache=sample_cache)


def client(mlflow_resource) -> MlflowClient:
    return MlflowClient(tracking_uri=mlflow_resource.tracking_uri, registry_uri=mlflow_resource.tracking_uri)


@pytest.fixture
def spec(churn_project):
    return make_spec(churn_project)


@pytest.fixture
def samples(mongo, spec):
    publish_synthetic_samples(mongo.project_db(spec.name), spec, days=DAYS, rows_per_day=150, seed=3, signal=1.5)
    return spec


def test_model_asset_trains_logs_registers_and_passes_the_gate(mongo, samples, mlflow_resource):
    spec = samples
    result = dg.materialize([build_model_asset(spec)], resources={"mongo": as_resource(mongo), "mlflow": mlflow_resource},
                            run_config={"ops": {"churn__model": {"config": {"embargo_days": 3}}}})
    assert result.success
    [check] = result.get_asset_check_evaluations()
    assert check.check_name == GATE_CHECK and check.passed
    metadata = result.asset_materializations_for_node("churn__model")[0].metadata
    version = metadata["model_version"].value
    assert metadata["auc"].value >= 0.7 and {"logloss", "pr_auc", "mlflow_run_id"} <= metadata.keys()
    # Embargo 3: the last training label window [01-06, 01-09) ends where validation (01-08, as_of 01-09) starts.
    assert metadata["train_partitions"].value == "2024-01-01 .. 2024-01-05"
    assert metadata["validation_partitions"].value == "2024-01-08 .. 2024-01-08"
    assert all(metadata[f"plot_{name}"].value.startswith("![") for name in ("roc", "calibration", "feature_importance"))
    assert metadata["partitions_from_cache"].value == 0

    mlflow_client = client(mlflow_resource)
    model_version = mlflow_client.get_model_version(spec.project.model.name, version)
    run = mlflow_client.get_run(model_version.run_id)
    assert {"auc", "logloss", "pr_auc", "best_iteration"} <= run.data.metrics.keys()
    assert run.data.metrics["auc"] == pytest.approx(metadata["auc"].value, abs=1e-6)
    assert run.data.params["max_depth"] == "6" and run.data.params["seed"] == "0"
    assert run.data.params["embargo_days"] == "3"
    for tags in (run.data.tags, model_version.tags):
        assert tags["mining.project"] == "churn"
        assert tags["mining.dagster_run_id"] == result.run_id
        assert set(json.loads(tags["mining.features"])) == {d.name for d in spec.definitions}
        assert json.loads(tags["mining.samples"])["validation"] == ["2024-01-08", "2024-01-08"]
        assert tags[aliases.GATE_TAG] == aliases.PASSED and "no champion" in tags[aliases.GATE_REASON_TAG]
    artifacts = {a.path for a in mlflow_client.list_artifacts(run.info.run_id, "plots")}
    assert artifacts == {"plots/roc.png", "plots/calibration.png", "plots/feature_importance.png"}

    with tracking(mlflow_resource.tracking_uri):
        info = mlflow.models.get_model_info(f"models:/{spec.project.model.name}/{version}")
        assert info.signature.inputs.input_names() == spec.feature_columns
        assert info.saved_input_example_info is not None
        loaded = mlflow.pyfunc.load_model(f"models:/{spec.project.model.name}/{version}")
        assert len(loaded.predict(loaded.input_example)) == len(loaded.input_example)


def test_same_samples_and_config_give_the_same_model(mongo, samples, mlflow_resource):
    first, second = train(mongo, samples, mlflow_resource), train(mongo, samples, mlflow_resource)
    assert first.logged.version != second.logged.version
    assert first.metrics == second.metrics and first.best_iteration == second.best_iteration


def test_gate_fails_a_model_trained_on_scrambled_labels_and_it_never_becomes_champion(mongo, spec, mlflow_resource):
    publish_synthetic_samples(mongo.project_db(spec.name), spec, days=DAYS, rows_per_day=150, seed=4, signal=0.0)
    result = dg.materialize([build_model_asset(spec)], resources={"mongo": as_resource(mongo), "mlflow": mlflow_resource},
                            run_config={"ops": {"churn__model": {"config": {"embargo_days": 3}}}}, raise_on_error=False)
    # The blocking check fails the run (nothing downstream may deploy); the version stays registered.
    assert not result.success
    [check] = result.get_asset_check_evaluations()
    assert not check.passed and "below the floor min 0.7" in check.description
    version = result.asset_materializations_for_node("churn__model")[0].metadata["model_version"].value
    mlflow_client = client(mlflow_resource)
    assert mlflow_client.get_model_version(spec.project.model.name, version).tags[aliases.GATE_TAG] == aliases.FAILED
    with pytest.raises(aliases.PromotionRefused, match="quality gate is 'failed'"):
        aliases.promote_to_champion(mlflow_client, spec.project.model.name, version)
    assert aliases.alias_version(mlflow_client, spec.project.model.name, aliases.CHAMPION) is None


def test_gate_compares_with_the_champion_on_the_same_rows(mongo, churn_project, mlflow_resource):
    strong = make_spec(churn_project, gate={"min": 0.5})
    publish_synthetic_samples(mongo.project_db(strong.name), strong, days=DAYS, rows_per_day=150, seed=5, signal=1.5)
    champion = train(mongo, strong, mlflow_resource)
    mlflow_client = client(mlflow_resource)
    assert aliases.promote_to_champion(mlflow_client, strong.project.model.name, champion.logged.version) is None

    # One stump under the same registered name: clearly worse than the champion, above the floor.
    weak = dataclasses.replace(strong, project=strong.project.model_copy(update={
        "model": strong.project.model.model_copy(update={"params": {"max_depth": 1, "n_estimators": 1}})}))
    worse = train(mongo, weak, mlflow_resource)
    assert not worse.gate.passed
    assert worse.gate.champion.version == champion.logged.version
    assert worse.gate.champion_value == pytest.approx(champion.metrics["auc"])  # same validation rows
    assert f"to champion v{champion.logged.version}" in worse.gate.reason and "max_regression 0.01" in worse.gate.reason
    with pytest.raises(aliases.PromotionRefused):
        aliases.promote_to_champion(mlflow_client, strong.project.model.name, worse.logged.version)

    retrained = train(mongo, strong, mlflow_resource)
    assert retrained.gate.passed and f"champion v{champion.logged.version} scores" in retrained.gate.reason
    previous = aliases.promote_to_champion(mlflow_client, strong.project.model.name, retrained.logged.version)
    assert previous == champion.logged.version
    assert aliases.alias_version(mlflow_client, strong.project.model.name, aliases.PREVIOUS) == champion.logged.version


def test_retraining_reads_unchanged_partitions_from_the_local_cache(mongo, samples, mlflow_resource, isolated_home):
    cache = isolated_home / "cache"
    first = train(mongo, samples, mlflow_resource, sample_cache=cache)
    used = len(first.data.sample_partitions)
    assert first.data.partitions_cached == 0
    second = train(mongo, samples, mlflow_resource, sample_cache=cache)
    assert second.data.partitions_cached == used
    assert second.metrics == first.metrics  # the same rows, in the same order

    # A republished day is a new run: read from MongoDB, and the replaced run's file is evicted.
    publish_synthetic_samples(mongo.project_db(samples.name), samples, days=[DAYS[-1]], rows_per_day=150, seed=9, signal=1.5)
    third = train(mongo, samples, mlflow_resource, sample_cache=cache)
    assert third.data.partitions_cached == used - 1
    assert third.metrics != first.metrics
    assert len(list(cache.rglob("*.arrow"))) == used


def test_training_refuses_what_it_cannot_split(mongo, samples, mlflow_resource):
    with pytest.raises(TrainingDataError, match="at least 14 days .embargo_days. before the first validation partition 2024-01-08"):
        train(mongo, samples, mlflow_resource, training=TrainingConfig())  # default embargo: the 14-day horizon
    with pytest.raises(TrainingDataError, match="no committed sample partitions of churn/samples in .2025-01-01, last."):
        train(mongo, samples, mlflow_resource, training=FAST.model_copy(update={"samples_from": dt.date(2025, 1, 1)}))


def test_cuda_request_without_a_gpu_falls_back_to_the_cpu_and_says_so():
    device, note = resolve_device("cuda")
    assert (device, note) == ("cuda", None) or (device == "cpu" and "no CUDA GPU" in note)
    assert resolve_device("cpu") == ("cpu", None)


def test_a_cached_partition_that_disagrees_with_its_marker_is_not_used(tmp_path):
    table = pa.table({"events_30d": [1.0, 2.0]})
    cache = PartitionCache(tmp_path, collection="db.samples_churn", schema=table.schema)
    marker = {"run_id": "r1", "documents": 2}
    cache.put(marker, table)
    assert cache.get(marker).equals(table)
    assert cache.get({**marker, "documents": 3}) is None
    next(tmp_path.rglob("r1.*.arrow")).write_bytes(b"not an arrow file")
    assert cache.get(marker) is None
    assert cache.evict_except({"r2"}) == 1 and not list(tmp_path.rglob("*.arrow"))


def test_mlflow_uris_are_restored_in_the_environment_too(monkeypatch, mlflow_resource):
    """Subprocesses started after a training (a model server, say) must not inherit MLflow's default URIs."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", "sqlite:///kept.db")
    with tracking(mlflow_resource.tracking_uri):
        assert os.environ["MLFLOW_TRACKING_URI"] == mlflow_resource.tracking_uri
    assert "MLFLOW_TRACKING_URI" not in os.environ
    assert os.environ["MLFLOW_REGISTRY_URI"] == "sqlite:///kept.db"


# --- tasks and gates -----------------------------------------------------------------------------


def regression_spec(churn_project, gate: dict) -> ProjectSpec:
    from tests.fixtures.specs import churn_label

    model = churn_project.model.model_copy(update={
        "name": f"spend_{uuid.uuid4().hex[:8]}", "task": "regression", "gate": GateConfig.model_validate(gate)})
    spec = load_spec(REPO / "projects" / "churn")
    label = churn_label(name="spend_next", default=0.0)
    return dataclasses.replace(spec, project=churn_project.model_copy(update={"model": model}), label_definition=label)


def test_a_regression_trains_logs_its_metrics_and_is_gated_both_ways(mongo, churn_project, mlflow_resource):
    spec = regression_spec(churn_project, {"metric": "rmse", "max": 1000.0, "max_regression": 0.5})
    # Integer entity ids (the fixture writes them for regression projects): training reads them as they are.
    publish_synthetic_samples(mongo.project_db(spec.name), spec, days=DAYS, rows_per_day=150, seed=5, signal=1.5)
    assert isinstance(mongo.project_db(spec.name)[spec.samples_collection].find_one()["user_id"], int)
    good = train(mongo, spec, mlflow_resource)
    assert good.gate.passed, good.gate.reason
    assert {"rmse", "mae", "r2", "label_mean", "train_rmse"} <= good.metrics.keys() and "auc" not in good.metrics
    assert good.metrics["r2"] > 0.3
    run = MlflowClient(mlflow_resource.tracking_uri).get_run(good.logged.run_id)
    assert run.data.tags["mining.task"] == "regression"
    assert run.data.params["objective"] == "reg:squarederror"
    artifacts = {a.path for a in MlflowClient(mlflow_resource.tracking_uri).list_artifacts(good.logged.run_id, "plots")}
    assert artifacts == {"plots/predicted_vs_actual.png", "plots/residuals.png", "plots/feature_importance.png"}
    # Reproducible whatever the id type: the same samples give the same model.
    assert train(mongo, spec, mlflow_resource).metrics["rmse"] == pytest.approx(good.metrics["rmse"], abs=1e-12)

    strict = regression_spec(churn_project, {"metric": "rmse", "max": 0.5, "max_regression": 0.5})
    bad = train(mongo, strict, mlflow_resource)
    assert not bad.gate.passed and "is above the ceiling max 0.5" in bad.gate.reason


def test_entity_ids_of_mixed_types_still_train_reproducibly(mongo, churn_project, mlflow_resource):
    spec = make_spec(churn_project)
    publish_synthetic_samples(mongo.project_db(spec.name), spec, days=DAYS, rows_per_day=100, seed=5, signal=1.5)
    samples = mongo.project_db(spec.name)[spec.samples_collection]
    for row in samples.find({"user_id": {"$regex": "[02468]$"}}, {"user_id": 1}):  # half the ids become integers
        samples.update_one({"_id": row["_id"]}, {"$set": {"user_id": int(row["user_id"].removeprefix("user-"))}})
    assert {type(v) for v in samples.distinct("user_id")} == {str, int}
    # What a build of such data records on its markers (the sample build counts the id types in the database).
    mongo.project_db(spec.name)[SAMPLE_MARKERS].update_many({}, {"$set": {"entity_types": ["int", "string"]}})
    first, second = train(mongo, spec, mlflow_resource), train(mongo, spec, mlflow_resource)
    assert first.data.train.rows + first.data.validation.rows == 100 * (len(DAYS) - 3 + 1)
    assert first.metrics["auc"] == second.metrics["auc"] and first.metrics["logloss"] == second.metrics["logloss"]
