"""`<p>/deployment`: promotion through the gate, hot reload, the hit check, rollback, and restoring aliases."""

import datetime as dt

import dagster as dg
import pytest
from fastapi import FastAPI
from mlflow import MlflowClient

from assets.deployment import build_deployment_asset
from mining_platform.registry.aliases import CHAMPION, FAILED, PASSED, PREVIOUS, alias_version, promote_to_champion
from mining_platform.serving.app import ServingConfig, create_app
from mining_platform.spec.names import PROMOTIONS, SERVING_DESIRED, SERVING_REPLICAS
from mining_platform.spec.replicas import Served, heartbeat_document
from mining_platform.tools.embedded_mongo import free_port
from resources import EndpointResource
from tests.fixtures import endpoint_server
from tests.fixtures.model_versions import register_version, unique_model_name
from tests.fixtures.specs import make_spec

TOKEN = "deploy-token"
FEATURES = ["events", "clicks", "spend"]


@pytest.fixture
def project(churn_project):
    return churn_project.model_copy(update={"model": churn_project.model.model_copy(update={"name": unique_model_name()})})


@pytest.fixture
def client(mlflow_resource) -> MlflowClient:
    return mlflow_resource.client()


@pytest.fixture
def endpoint(project, mongo, mlflow_resource):
    config = ServingConfig(projects=[make_spec(project)], tracking_uri=mlflow_resource.tracking_uri,
                           mongo_uri=mongo.uri, database=mongo.database, admin_token=TOKEN, log_sample_rate=0.0)
    with endpoint_server.running(create_app(config)) as url:
        yield EndpointResource(url=url, admin_token=TOKEN)


def register(project, mlflow_resource, seed, gate=PASSED):
    return register_version(mlflow_resource.tracking_uri, mlflow_resource.artifact_location, project.model.name,
                            FEATURES, seed=seed, gate=gate)


def deploy(project, mongo, mlflow_resource, endpoint, instance, model_version: str | None, **config):
    """Materialise the deployment after `<p>/model` reported `model_version` (as a training run would)."""
    if model_version is not None:
        instance.report_runless_asset_event(dg.AssetMaterialization(
            asset_key=[project.name, "model"], metadata={"model_version": model_version}))
    return dg.materialize(
        [build_deployment_asset(project)], instance=instance, raise_on_error=False,
        resources={"mlflow": mlflow_resource, "endpoint": endpoint, "mongo": mongo},
        run_config={"ops": {f"{project.name}__deployment": {"config": config}}} if config else None,
    )


def aliases(client, project) -> dict:
    return {alias: alias_version(client, project.model.name, alias) for alias in (CHAMPION, PREVIOUS)}


def retries(result) -> int:
    return sum(event.event_type_value == "STEP_UP_FOR_RETRY" for event in result.all_events)


def failure(result) -> str:
    return result.get_step_failure_events()[0].step_failure_data.user_failure_data.description


def test_deployment_promotes_the_new_version_reloads_and_checks_the_endpoint(project, mongo, mlflow_resource, client,
                                                                            endpoint):
    first, second = register(project, mlflow_resource, 1), register(project, mlflow_resource, 2)
    with dg.instance_for_test() as instance:
        deployed = deploy(project, mongo, mlflow_resource, endpoint, instance, first.version)
        assert deployed.success, failure(deployed)
        assert endpoint.version("churn")["version"] == first.version

        result = deploy(project, mongo, mlflow_resource, endpoint, instance, second.version)
        assert result.success, failure(result)
        metadata = result.get_asset_materialization_events()[0].materialization.metadata
        assert aliases(client, project) == {"champion": second.version, "previous": first.version}
        assert endpoint.version("churn")["version"] == second.version
        assert metadata["live_version"].value == second.version
        assert metadata["previous_version"].value == first.version
        assert metadata["endpoint_url"].value == endpoint.url
        assert metadata["mlflow_run_id"].value == second.run_id

        rolled_back = deploy(project, mongo, mlflow_resource, endpoint, instance, None, rollback=True)
        assert rolled_back.success, failure(rolled_back)
        assert aliases(client, project) == {"champion": first.version, "previous": second.version}
        assert endpoint.version("churn")["version"] == first.version
        action = rolled_back.get_asset_materialization_events()[0].materialization.metadata["action"].value
        assert action == f"rollback to version {first.version}, served before version {second.version}"


def test_rollback_goes_back_to_what_was_served_before_even_after_a_hand_move(project, mongo, mlflow_resource, client,
                                                                            endpoint):
    """The walkthrough's trap: v2 deployed (v1 previous), champion moved back to v1 by hand in MLflow, so both
    aliases name v1. A rollback used to swap v1 with v1 and report success; it now goes by what was served."""
    first, second = register(project, mlflow_resource, 11), register(project, mlflow_resource, 12)
    with dg.instance_for_test() as instance:
        assert deploy(project, mongo, mlflow_resource, endpoint, instance, first.version).success
        only_one = deploy(project, mongo, mlflow_resource, endpoint, instance, None, rollback=True)
        assert not only_one.success
        assert (f"nothing to roll back to: {project.model.name}@champion is version {first.version} and no other "
                f"version was served before it") in failure(only_one)
        assert deploy(project, mongo, mlflow_resource, endpoint, instance, second.version).success
        client.set_registered_model_alias(project.model.name, "champion", first.version)  # by hand
        assert aliases(client, project) == {"champion": first.version, "previous": first.version}

        rolled_back = deploy(project, mongo, mlflow_resource, endpoint, instance, None, rollback=True)
        assert rolled_back.success, failure(rolled_back)
        metadata = rolled_back.get_asset_materialization_events()[0].materialization.metadata
    assert aliases(client, project) == {"champion": second.version, "previous": first.version}
    assert endpoint.version("churn")["version"] == second.version
    assert metadata["live_version"].value == second.version


def test_a_version_that_failed_its_gate_is_never_deployed(project, mongo, mlflow_resource, client, endpoint):
    good = register(project, mlflow_resource, 3)
    bad = register(project, mlflow_resource, 4, gate=FAILED)
    with dg.instance_for_test() as instance:
        assert deploy(project, mongo, mlflow_resource, endpoint, instance, good.version).success
        result = deploy(project, mongo, mlflow_resource, endpoint, instance, bad.version)
    assert not result.success
    assert "quality gate is 'failed'" in failure(result)
    assert aliases(client, project) == {"champion": good.version, "previous": None}
    assert endpoint.version("churn")["version"] == good.version


def test_a_stale_replica_or_none_at_all_fails_the_deployment(project, mongo, mlflow_resource, client):
    """An endpoint that accepts the reload but whose replica keeps serving another version (its heartbeat says so),
    and then one with no live replica at all: both fail within the wait and restore the aliases and the record."""
    elsewhere = FastAPI()

    @elsewhere.post("/v1/churn/reload")
    def reload() -> dict:
        return {"changed": True}

    current, new = register(project, mlflow_resource, 5), register(project, mlflow_resource, 6)
    promote_to_champion(client, project.model.name, current.version)
    replicas = mongo.endpoint_db(project.name)[SERVING_REPLICAS]
    now = dt.datetime.now(dt.timezone.utc)
    replicas.insert_one(heartbeat_document("stale-pod:1", host="stale-pod", pid=1, started_at=now, now=now,
                                           interval_seconds=60, served={"champion": Served("999")}, errors={}))
    with endpoint_server.running(elsewhere) as url, dg.instance_for_test() as instance:
        fake = EndpointResource(url=url, admin_token=TOKEN, converge_timeout_seconds=1)
        stale = deploy(project, mongo, mlflow_resource, fake, instance, new.version)
        replicas.delete_many({})
        nobody = deploy(project, mongo, mlflow_resource, fake, instance, new.version)
    assert not stale.success
    assert (f"1 of 1 live replicas do not serve version {new.version} as champion: stale-pod:1 serves 999"
            in failure(stale))
    assert "no live endpoint replica reports to" in failure(nobody)
    assert retries(nobody) == 3  # the endpoint may be restarting: an outage, retried
    assert aliases(client, project) == {"champion": current.version, "previous": None}  # restored
    assert mongo.project_db(project.name)[SERVING_DESIRED].find_one({"_id": "champion"}) is None  # as before
    moves = list(mongo.project_db(project.name)[PROMOTIONS].find())
    assert {m["outcome"] for m in moves} == {"restored"} and {m["to"] for m in moves} == {new.version}


def test_an_unreachable_endpoint_fails_the_deployment_and_restores_the_aliases(project, mongo, mlflow_resource, client):
    only = register(project, mlflow_resource, 7)
    down = EndpointResource(url=f"http://127.0.0.1:{free_port()}", admin_token=TOKEN, timeout_seconds=2)
    with dg.instance_for_test() as instance:
        result = deploy(project, mongo, mlflow_resource, down, instance, only.version)
        no_model = deploy(project, mongo, mlflow_resource, down, instance, None, rollback=True)
    assert not result.success and "cannot reach the endpoint" in failure(result)
    assert aliases(client, project) == {"champion": None, "previous": None}
    # An outage: the step was retried by the policy (MINING_STEP_RETRIES = 3) before failing.
    assert retries(result) == 3
    assert "has no 'previous' version to roll back to" in failure(no_model)
    assert retries(no_model) == 0  # a refusal is not retried
