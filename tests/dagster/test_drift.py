"""The drift loop: the reference logged with a version, `<p>/drift_report`, and the drift and champion sensors.

Feature days are published directly (through the same audit and commit path as a
pipeline run) with known distributions; the champion is a small registered version
whose reference holds the quiet distribution.
"""

import copy
import datetime as dt
import json

import dagster as dg
import numpy as np
import pytest
from mlflow import MlflowClient

from assets.drift_report import build_drift_report_asset
from mining_platform.registry import aliases, versions
from mining_platform.spec import ProjectSpec
from mining_platform.spec.definition import FeatureDefinition
from mining_platform.spec.names import PREDICTION_LOG
from mining_platform.spec.tags import drift_report_job, retrain_job
from sensors.definitions import project_definitions
from sensors.retrain import matured_sample_range
from tests.fixtures.definitions import COUNTS, SPEND
from tests.fixtures.feature_days import publish_feature_day
from tests.fixtures.model_versions import register_synthetic_version, synthetic_rows, unique_model_name
from tests.fixtures.specs import make_spec

UTC = dt.timezone.utc
FEATURES = ["events", "clicks", "spend"]
QUIET, DRIFTED = "2024-01-10", "2024-01-11"
DRIFT = np.array([2.0, 1.8, 1.0])  # events and clicks shift; spend does not


@pytest.fixture
def spec(churn_project) -> ProjectSpec:
    project = churn_project.model_copy(update={
        "model": churn_project.model.model_copy(update={"name": unique_model_name()}),
        "drift": churn_project.drift.model_copy(update={"psi_threshold": 0.2, "min_drifted_features": 2}),
    })
    definitions = (FeatureDefinition.model_validate(copy.deepcopy(COUNTS)),
                   FeatureDefinition.model_validate(copy.deepcopy(SPEND)))
    return make_spec(project, definitions)


@pytest.fixture
def champion(spec, mlflow_resource) -> versions.LoggedVersion:
    """A champion whose reference is 2000 rows of the quiet distribution."""
    logged = register_synthetic_version(
        tracking_uri=mlflow_resource.tracking_uri, artifact_location=mlflow_resource.artifact_location,
        model_name=spec.project.model.name, features=FEATURES, seed=1, project=spec.project.name, rows=2000)
    set_champion(mlflow_resource, logged)
    return logged


def set_champion(mlflow_resource, logged) -> None:
    MlflowClient(tracking_uri=mlflow_resource.tracking_uri, registry_uri=mlflow_resource.tracking_uri) \
        .set_registered_model_alias(logged.name, aliases.CHAMPION, logged.version)


def as_of(day: str) -> dt.datetime:
    return dt.datetime.fromisoformat(day).replace(tzinfo=UTC) + dt.timedelta(days=1)


def publish_day(mongo, spec: ProjectSpec, day: str, X: np.ndarray) -> None:
    """Commit one partition of every feature set holding the columns of X (NaN = no document field)."""
    publish_feature_day(mongo.project_db(spec.name), spec, partition=day, as_of=as_of(day),
                        columns={name: X[:, i] for i, name in enumerate(FEATURES)})


def quiet_rows(seed: int = 11) -> np.ndarray:
    return synthetic_rows(FEATURES, 800, seed)


def drifted_rows() -> np.ndarray:
    return synthetic_rows(FEATURES, 800, 12) * DRIFT


def report(spec, mongo, mlflow_resource, instance, day: str) -> dg.ExecuteInProcessResult:
    return dg.materialize([build_drift_report_asset(spec)], partition_key=day, instance=instance,
                          resources={"mongo": mongo, "mlflow": mlflow_resource}, raise_on_error=False)


def metadata(result: dg.ExecuteInProcessResult) -> dict:
    [materialization] = result.asset_materializations_for_node(result.get_step_success_events()[0].step_key)
    return {key: value.value for key, value in materialization.metadata.items()}


def failure(result) -> str:
    return result.get_step_failure_events()[0].step_failure_data.user_failure_data.description


def commit_features_in_dagster(instance, spec, day: str) -> None:
    """What a feature run records when it commits a day: one materialisation per feature set."""
    for definition in spec.definitions:
        instance.report_runless_asset_event(dg.AssetMaterialization(
            asset_key=[spec.project.name, "features", definition.name], partition=day))


def sensor(spec, name: str):
    """A sensor as the project's code location defines it, with its Definitions (to resolve its jobs)."""
    definitions = project_definitions(spec)
    return definitions.resolve_sensor_def(f"{spec.project.name}_{name}"), definitions


def tick(sensor_and_definitions, instance, mlflow_resource, cursor=None, *, mongo=None):
    sensor, definitions = sensor_and_definitions
    resources = {"mlflow": mlflow_resource, **({"mongo": mongo} if mongo is not None else {})}
    context = dg.build_sensor_context(instance=instance, cursor=cursor, resources=resources, definitions=definitions)
    return sensor.evaluate_tick(context)


# --- the reference -------------------------------------------------------------------------------


def test_training_logs_the_reference_of_every_row_the_version_learned_from(spec, mongo, mlflow_resource):
    from mining_platform.registry.aliases import Champion
    from mining_platform.registry.reference import load_reference
    from mining_platform.training.model import train_and_register
    from tests.fixtures.sample_partitions import publish_synthetic_samples

    days = [dt.date(2024, 1, d) for d in (1, 2, 3)]
    publish_synthetic_samples(mongo.project_db(spec.name), spec, days=days, rows_per_day=200, seed=3)
    outcome = train_and_register(db=mongo.project_db(spec.name), spec=spec, training=spec.project.model.training.model_copy(
        update={"embargo_days": 0}), tracking_uri=mlflow_resource.tracking_uri,
        artifact_location=mlflow_resource.artifact_location, cause_tags={"mining.cause": "drift"})
    reference = load_reference(mlflow_resource.tracking_uri, Champion(
        name=outcome.logged.name, version=outcome.logged.version, run_id=outcome.logged.run_id))
    assert list(reference.features) == outcome.data.features
    assert reference.sample_partitions == ("2024-01-01", "2024-01-02", "2024-01-03")
    rows = outcome.data.train.rows + outcome.data.validation.rows
    assert all(d.rows == rows for d in reference.features.values())
    assert reference.scores.rows == outcome.data.validation.rows
    run = MlflowClient(tracking_uri=mlflow_resource.tracking_uri).get_run(outcome.logged.run_id)
    assert run.data.tags["mining.cause"] == "drift"


# --- <p>/drift_report ----------------------------------------------------------------------------


def test_a_quiet_day_is_not_drifted_and_a_shifted_day_is(spec, mongo, mlflow_resource, champion):
    publish_day(mongo, spec, QUIET, quiet_rows())
    publish_day(mongo, spec, DRIFTED, drifted_rows())
    with dg.instance_for_test() as instance:
        quiet = metadata(report(spec, mongo, mlflow_resource, instance, QUIET))
        drifted = metadata(report(spec, mongo, mlflow_resource, instance, DRIFTED))

    assert quiet["champion_version"] == champion.version and quiet["rows"] == 800
    assert quiet["drifted_features"] == {} and quiet["retrain_needed"] is False
    assert max(quiet["psi"].values()) < 0.1
    assert quiet["decision"].startswith("no retrain: 0 of 3 features over PSI 0.2")
    assert not [key for key in quiet if key.startswith("plot_")]

    assert set(drifted["drifted_features"]) == {"events", "clicks"} and drifted["retrain_needed"] is True
    assert drifted["psi"]["spend"] < 0.1
    assert {"plot_events", "plot_clicks"} <= set(drifted) and "plot_spend" not in drifted
    assert drifted["plot_events"].startswith("![events drift](data:image/png;base64,")
    table = {record.data["feature"]: record.data for record in drifted["statistics"].records}
    assert table["events"]["drifted"] is True and table["events"]["ks_pvalue"] < 1e-6
    assert table["spend"]["drifted"] is False and table["spend"]["ks_pvalue"] > 1e-3
    assert drifted["scores_logged"] == 0 and "score_psi" not in drifted


def test_the_report_compares_logged_scores_of_the_champion_for_that_day(spec, mongo, mlflow_resource, champion):
    publish_day(mongo, spec, QUIET, quiet_rows())
    start = as_of(QUIET) - dt.timedelta(days=1)
    rng = np.random.default_rng(5)
    mongo.endpoint_db(spec.name)[PREDICTION_LOG].insert_many([
        {"project": spec.project.name, "model": {"name": champion.name, "version": version},
         "time": start + dt.timedelta(minutes=i), "score": float(score)}
        for i, (version, score) in enumerate(
            [(champion.version, s) for s in rng.beta(8, 2, 300)]  # far more confident than the reference
            + [("999", 0.5)] * 50)  # another version's: not compared
    ])
    with dg.instance_for_test() as instance:
        values = metadata(report(spec, mongo, mlflow_resource, instance, QUIET))
    assert values["scores_logged"] == 300
    assert values["score_psi"] > 0.2 and values["score_ks_pvalue"] < 1e-6
    assert values["plot_score"].startswith("![score drift]")


def test_the_report_says_why_it_cannot_compare(spec, mongo, mlflow_resource):
    with dg.instance_for_test() as instance:
        result = report(spec, mongo, mlflow_resource, instance, QUIET)
        assert "has no champion to compare 2024-01-10 with" in failure(result)

        logged = register_synthetic_version(
            tracking_uri=mlflow_resource.tracking_uri, artifact_location=mlflow_resource.artifact_location,
            model_name=spec.project.model.name, features=FEATURES, seed=2, project=spec.project.name)
        set_champion(mlflow_resource, logged)
        result = report(spec, mongo, mlflow_resource, instance, QUIET)
        assert "no committed partition of features/event_counts" in failure(result)
        # A validation problem is not retried: one attempt only.
        assert len(result.get_step_failure_events()) == 1 and not [
            e for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]

        # A version logged before drift monitoring has no reference.
        client = MlflowClient(tracking_uri=mlflow_resource.tracking_uri, registry_uri=mlflow_resource.tracking_uri)
        run = client.create_run(client.get_run(logged.run_id).info.experiment_id)
        version = client.create_model_version(logged.name, f"runs:/{run.info.run_id}/model", run_id=run.info.run_id)
        client.set_registered_model_alias(logged.name, aliases.CHAMPION, version.version)
        publish_day(mongo, spec, QUIET, quiet_rows())
        result = report(spec, mongo, mlflow_resource, instance, QUIET)
        assert f"version {version.version}" in failure(result) and "has no drift_reference.json" in failure(result)


# --- <p>_drift_sensor ----------------------------------------------------------------------------


def test_drift_sensor_reports_new_days_and_retrains_once_on_drift(spec, mongo, mlflow_resource, champion):
    project = spec.project
    drift_sensor = sensor(spec, "drift_sensor")
    publish_day(mongo, spec, QUIET, quiet_rows())
    publish_day(mongo, spec, DRIFTED, drifted_rows())
    with dg.instance_for_test() as instance:
        first = tick(drift_sensor, instance, mlflow_resource, mongo=mongo)
        assert not first.run_requests and first.skip_message == "no new feature partition and no new drift report"

        # A quiet day is committed: its report is requested, then it decides "no retrain".
        commit_features_in_dagster(instance, spec, QUIET)
        asked = tick(drift_sensor, instance, mlflow_resource, first.cursor, mongo=mongo)
        [request] = asked.run_requests
        assert request.job_name == drift_report_job(project.name) and request.partition_key == QUIET
        assert report(spec, mongo, mlflow_resource, instance, QUIET).success
        quiet = tick(drift_sensor, instance, mlflow_resource, asked.cursor, mongo=mongo)
        assert not quiet.run_requests
        assert quiet.skip_message.startswith(f"{QUIET} against v{champion.version}: 0 of 3 features over PSI 0.2 (none)")
        assert quiet.skip_message.endswith("2 needed to retrain")

        # A drifted day: exactly one retrain request, with a deterministic key and the cause in its tags.
        commit_features_in_dagster(instance, spec, DRIFTED)
        asked = tick(drift_sensor, instance, mlflow_resource, quiet.cursor, mongo=mongo)
        assert [r.partition_key for r in asked.run_requests] == [DRIFTED]
        assert report(spec, mongo, mlflow_resource, instance, DRIFTED).success
        drifted = tick(drift_sensor, instance, mlflow_resource, asked.cursor, mongo=mongo)
        [retrain] = drifted.run_requests
        assert retrain.job_name == retrain_job(project.name)
        assert retrain.run_key == f"drift:{project.name}:{DRIFTED}:{champion.version}"
        assert retrain.tags["mining.cause"] == "drift"
        assert retrain.tags["mining.drift.partition"] == DRIFTED
        assert set(retrain.tags["mining.drift.features"].split(",")) == {"events", "clicks"}
        assert float(retrain.tags["mining.drift.psi.events"]) > 0.2 and "mining.drift.psi.spend" not in retrain.tags
        # No sample day has matured (the label source holds no events): retrain on the committed samples, then deploy.
        assert [key.path[-1] for key in retrain.asset_selection] == ["model", "deployment"]

        # The cursor moved past the report: the next tick asks nothing.
        before, after = json.loads(asked.cursor), json.loads(drifted.cursor)
        assert after["report_event"] > before["report_event"] and after["decided_partition"] == DRIFTED
        again = tick(drift_sensor, instance, mlflow_resource, drifted.cursor, mongo=mongo)
        assert not again.run_requests and again.skip_message == "no new feature partition and no new drift report"
        # A crash before the cursor was stored evaluates the same tick again: the same run key, which
        # Dagster launches only once.
        [repeat] = tick(drift_sensor, instance, mlflow_resource, asked.cursor, mongo=mongo).run_requests
        assert repeat.run_key == retrain.run_key and repeat.tags == retrain.tags


def test_drift_sensor_ignores_reports_against_a_replaced_champion(spec, mongo, mlflow_resource, champion):
    drift_sensor = sensor(spec, "drift_sensor")
    publish_day(mongo, spec, DRIFTED, drifted_rows())
    with dg.instance_for_test() as instance:
        assert report(spec, mongo, mlflow_resource, instance, DRIFTED).success
        newer = register_synthetic_version(
            tracking_uri=mlflow_resource.tracking_uri, artifact_location=mlflow_resource.artifact_location,
            model_name=spec.project.model.name, features=FEATURES, seed=3, project=spec.project.name)
        set_champion(mlflow_resource, newer)
        result = tick(drift_sensor, instance, mlflow_resource, mongo=mongo)
        assert not result.run_requests
        assert f"but the champion is v{newer.version} now" in result.skip_message


def test_drift_sensor_requests_no_report_for_backfilled_older_days(spec, mongo, mlflow_resource, champion):
    drift_sensor = sensor(spec, "drift_sensor")
    with dg.instance_for_test() as instance:
        commit_features_in_dagster(instance, spec, DRIFTED)
        [request] = tick(drift_sensor, instance, mlflow_resource, mongo=mongo).run_requests
        cursor = tick(drift_sensor, instance, mlflow_resource, mongo=mongo).cursor
        commit_features_in_dagster(instance, spec, QUIET)  # an older day, backfilled later
        result = tick(drift_sensor, instance, mlflow_resource, cursor, mongo=mongo)
        assert not result.run_requests and "older than 2024-01-11" in result.skip_message


def test_matured_sample_days_follow_the_last_built_day(spec):
    project = spec.project
    with dg.instance_for_test() as instance:
        def materialized(path, days):
            for day in days:
                instance.report_runless_asset_event(dg.AssetMaterialization(asset_key=path, partition=day))

        days = [(dt.date(2024, 1, 1) + dt.timedelta(days=i)).isoformat() for i in range(40)]
        complete = dt.date(2024, 2, 4)  # the label source holds complete days up to 2024-02-04
        for definition in spec.definitions:
            materialized([project.name, "features", definition.name], days[:35])
        assert matured_sample_range(instance, spec, complete) == ("2024-01-01", "2024-01-21")  # + 14 days of labels
        assert matured_sample_range(instance, spec, None) is None  # an empty source labels nothing
        materialized([project.name, "samples"], days[:18])
        assert matured_sample_range(instance, spec, complete) == ("2024-01-19", "2024-01-21")
        materialized([project.name, "samples"], days[18:21])
        assert matured_sample_range(instance, spec, complete) is None


# --- <p>_champion_sensor -------------------------------------------------------------------------


def test_champion_sensor_redeploys_once_per_alias_move(spec, mlflow_resource):
    project = spec.project
    champion_sensor = sensor(spec, "champion_sensor")
    deployment = dg.AssetKey([project.name, "deployment"])
    versions = [register_synthetic_version(
        tracking_uri=mlflow_resource.tracking_uri, artifact_location=mlflow_resource.artifact_location,
        model_name=project.model.name, features=FEATURES, seed=seed, project=project.name) for seed in (1, 2)]
    with dg.instance_for_test() as instance:
        def deployed(version: str) -> None:
            instance.report_runless_asset_event(dg.AssetMaterialization(
                asset_key=deployment, metadata={"live_version": version}))

        none = tick(champion_sensor, instance, mlflow_resource)
        assert not none.run_requests and none.skip_message == f"{project.model.name} has no champion"

        set_champion(mlflow_resource, versions[0])
        [first] = tick(champion_sensor, instance, mlflow_resource, none.cursor).run_requests
        assert first.job_name == f"{project.name}_deploy_job"
        assert first.run_config == {"ops": {f"{project.name}__deployment": {"config": {"version": versions[0].version}}}}
        assert first.tags["mining.cause"] == "champion_moved"
        cursor = tick(champion_sensor, instance, mlflow_resource, none.cursor).cursor
        # Until the deployment runs, ticks repeat the same key: Dagster launches it once.
        [same] = tick(champion_sensor, instance, mlflow_resource, cursor).run_requests
        assert same.run_key == first.run_key
        deployed(versions[0].version)
        done = tick(champion_sensor, instance, mlflow_resource, cursor)
        assert not done.run_requests and "deployed with v" in done.skip_message

        # Moved in the MLflow UI: one new key; moving back later is a new move with its own key.
        set_champion(mlflow_resource, versions[1])
        [second] = tick(champion_sensor, instance, mlflow_resource, done.cursor).run_requests
        assert second.run_key != first.run_key and second.run_key.startswith(
            f"champion:{project.name}:{versions[1].version}:")
        cursor = tick(champion_sensor, instance, mlflow_resource, done.cursor).cursor
        deployed(versions[1].version)
        set_champion(mlflow_resource, versions[0])
        [back] = tick(champion_sensor, instance, mlflow_resource, cursor).run_requests
        assert back.run_key not in (first.run_key, second.run_key)
        assert back.run_key.startswith(f"champion:{project.name}:{versions[0].version}:")
