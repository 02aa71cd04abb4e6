"""Challengers: shadow and canary serving over HTTP, the prediction log's roles, and the deployment asset's
`role: challenger` (deploy, hit check, retire, promotion). A version whose gate did not pass is never served."""

import datetime as dt

import dagster as dg
import httpx
import numpy as np
import pytest
from mlflow import MlflowClient

from assets.deployment import build_deployment_asset
from mining_platform.registry import aliases
from mining_platform.serving.app import create_app
from mining_platform.spec.names import PROMOTIONS
from mining_platform.spec.routing import routes_to_challenger
from resources import EndpointResource
from tests.conftest import wait_until
from tests.fixtures import endpoint_server
from tests.fixtures.feature_days import publish_feature_day
from tests.fixtures.model_versions import synthetic_rows
from tests.fixtures.mongo import as_resource
from tests.fixtures.serving import (  # noqa: F401 (definitions: a fixture)
    ADMIN,
    FEATURES,
    JSON,
    TOKEN,
    as_rows,
    definitions,
    predict,
    promote,
    reference_scores,
    register,
    serving_config,
)

UTC = dt.timezone.utc


def with_challenger(churn_project, mode: str, traffic: float = 0.3):
    from tests.fixtures.model_versions import unique_model_name

    serving = churn_project.serving.model_copy(update={"challenger": churn_project.serving.challenger.model_copy(
        update={"mode": mode, "traffic": traffic})})
    return churn_project.model_copy(update={
        "model": churn_project.model.model_copy(update={"name": unique_model_name()}), "serving": serving})


def set_alias(mlflow_resource, logged, alias: str) -> None:
    MlflowClient(tracking_uri=mlflow_resource.tracking_uri, registry_uri=mlflow_resource.tracking_uri) \
        .set_registered_model_alias(logged.name, alias, logged.version)


def loaded(url: str, *, challenger: str | None = None) -> None:
    def ready():
        health = httpx.get(f"{url}/health", headers=ADMIN).json()["projects"]["churn"]
        return health["version"] and (challenger is None or health["challenger"]["version"] == challenger)
    wait_until(ready, timeout=60, what="the champion (and challenger) loaded")


def test_a_shadow_challenger_scores_the_logged_requests_and_never_answers(churn_project, definitions, mongo, mlflow_resource):
    project = with_challenger(churn_project, "shadow")
    champion, challenger = register(project, mlflow_resource, seed=1), register(project, mlflow_resource, seed=2)
    promote(mlflow_resource, champion)
    set_alias(mlflow_resource, challenger, aliases.CHALLENGER)
    X = synthetic_rows(FEATURES, 5, seed=3)
    config = serving_config(project, definitions, mongo, mlflow_resource, log_sample_rate=1.0)
    with endpoint_server.running(create_app(config)) as url:
        loaded(url, challenger=challenger.version)
        answer = predict(url, "churn", {"rows": as_rows(X)}).json()
        version = httpx.get(f"{url}/v1/churn/version").json()
        wait_until(lambda: mongo.endpoint_db("churn")["prediction_log"].count_documents({}) == 10, timeout=10,
                   what="10 log records")
    assert answer["model"]["version"] == champion.version and "versions" not in answer
    assert answer["predictions"] == reference_scores(mlflow_resource, champion, X)
    assert answer["challenger"] == {"name": challenger.name, "version": challenger.version, "mode": "shadow"}
    assert version["challenger"]["version"] == challenger.version and version["challenger"]["mode"] == "shadow"
    docs = list(mongo.endpoint_db("churn")["prediction_log"].find({}, {"_id": 0}))
    answered = [d for d in docs if d["answered"]]
    shadow = [d for d in docs if not d["answered"]]
    assert {(d["role"], d["model"]["version"]) for d in answered} == {("champion", champion.version)}
    assert {(d["role"], d["model"]["version"]) for d in shadow} == {("challenger", challenger.version)}
    assert sorted(d["score"] for d in shadow) == sorted(reference_scores(mlflow_resource, challenger, X))


def test_a_canary_answers_its_share_of_entities_the_same_way_every_time(churn_project, definitions, mongo,
                                                                        mlflow_resource):
    project = with_challenger(churn_project, "canary", traffic=0.3)
    champion, challenger = register(project, mlflow_resource, seed=4), register(project, mlflow_resource, seed=5)
    promote(mlflow_resource, champion)
    set_alias(mlflow_resource, challenger, aliases.CHALLENGER)
    X = synthetic_rows(FEATURES, 200, seed=6)
    spec = serving_config(project, definitions, mongo, mlflow_resource).projects[0]
    publish_feature_day(mongo.project_db("churn"), spec, partition="2024-01-10",
                        as_of=dt.datetime(2024, 1, 11, tzinfo=UTC), columns={f: X[:, i] for i, f in enumerate(FEATURES)})
    entities = [f"u{i:07d}" for i in range(200)]
    config = serving_config(project, definitions, mongo, mlflow_resource, log_sample_rate=1.0, log_max_rows=1000)
    with endpoint_server.running(create_app(config)) as url:
        loaded(url, challenger=challenger.version)
        first = predict(url, "churn", {"entities": entities}).json()
        again = predict(url, "churn", {"entities": list(reversed(entities))}).json()
        keyed = [predict(url, "churn", {"rows": as_rows(X[:1])}, headers={**JSON, "X-Request-Key": key}).json()
                 for key in ("order-1", "order-2", "order-1")]
        too_long = predict(url, "churn", {"rows": as_rows(X[:1])}, headers={**JSON, "X-Request-Key": "k" * 300})
        wait_until(lambda: mongo.endpoint_db("churn")["prediction_log"].count_documents({"entity": {"$exists": True}})
                   == 400, timeout=10, what="400 entity log records")
    expected = [challenger.version if routes_to_challenger("churn", e, challenger.version, 0.3) else champion.version
                for e in entities]
    assert first["versions"] == expected
    assert again["versions"] == list(reversed(expected))  # sticky: the same entity gets the same version
    share = expected.count(challenger.version) / len(entities)
    assert 0.15 < share < 0.45
    by_champion = reference_scores(mlflow_resource, champion, X)
    by_challenger = reference_scores(mlflow_resource, challenger, X)
    assert first["predictions"] == [c if v == challenger.version else m
                                    for v, m, c in zip(expected, by_champion, by_challenger)]
    assert keyed[0]["versions"] == keyed[2]["versions"]  # the same key, the same version
    assert [k["versions"][0] for k in keyed[:2]] == [
        challenger.version if routes_to_challenger("churn", key, challenger.version, 0.3) else champion.version
        for key in ("order-1", "order-2")]
    assert too_long.status_code == 422 and "X-Request-Key" in too_long.json()["detail"]
    docs = list(mongo.endpoint_db("churn")["prediction_log"].find({"entity": {"$exists": True}}, {"_id": 0}))
    assert all(d["answered"] and d["as_of"] == dt.datetime(2024, 1, 11, tzinfo=UTC) for d in docs)
    assert {(d["entity"], d["role"], d["model"]["version"]) for d in docs} == {
        (e, "challenger" if v == challenger.version else "champion", v) for e, v in zip(entities, expected)}


def test_a_version_whose_gate_failed_is_never_served_in_either_role(churn_project, definitions, mongo,
                                                                   mlflow_resource):
    project = with_challenger(churn_project, "canary", traffic=0.5)
    champion = register(project, mlflow_resource, seed=7)
    failed = register(project, mlflow_resource, seed=8, gate=aliases.FAILED)
    promote(mlflow_resource, champion)
    with endpoint_server.running(create_app(serving_config(project, definitions, mongo, mlflow_resource))) as url:
        loaded(url)
        set_alias(mlflow_resource, failed, aliases.CHALLENGER)  # moved by hand in the MLflow UI
        challenger = httpx.post(f"{url}/v1/churn/reload", params={"role": "challenger"}, headers=ADMIN)
        set_alias(mlflow_resource, failed, aliases.CHAMPION)
        champion_reload = httpx.post(f"{url}/v1/churn/reload", headers=ADMIN)
        version = httpx.get(f"{url}/v1/churn/version").json()
        health = httpx.get(f"{url}/health", headers=ADMIN).json()["projects"]["churn"]
        bad_role = httpx.post(f"{url}/v1/churn/reload", params={"role": "previous"}, headers=ADMIN)
    assert challenger.status_code == 409 and "quality gate is 'failed'" in challenger.json()["detail"]
    assert champion_reload.status_code == 409 and f"still serving version {champion.version}" in \
        champion_reload.json()["detail"]
    assert version["version"] == champion.version and version["challenger"] is None
    assert "quality gate" in health["challenger"]["last_reload_error"]
    assert bad_role.status_code == 422


# --- the deployment asset with role challenger -------------------------------------------------------


def deploy(project, mongo, mlflow_resource, endpoint, instance, **config):
    return dg.materialize([build_deployment_asset(project)], instance=instance, raise_on_error=False,
                          resources={"mlflow": mlflow_resource, "endpoint": endpoint, "mongo": as_resource(mongo)},
                          run_config={"ops": {f"{project.name}__deployment": {"config": config}}}, tags={
                              "mining.cause": "performance", "mining.performance.decision": "test"})


def metadata(result) -> dict:
    return {k: v.value for k, v in result.get_asset_materialization_events()[0].materialization.metadata.items()}


def failure(result) -> str:
    return result.get_step_failure_events()[0].step_failure_data.user_failure_data.description


@pytest.mark.parametrize("mode", ["shadow", "canary"])
def test_deploying_checking_promoting_and_retiring_a_challenger(churn_project, definitions, mongo, mlflow_resource,
                                                                mode):
    project = with_challenger(churn_project, mode, traffic=0.2)
    client = mlflow_resource.client()
    first, second, third = (register(project, mlflow_resource, seed=s) for s in (11, 12, 13))
    failed = register(project, mlflow_resource, seed=14, gate=aliases.FAILED)
    config = serving_config(project, definitions, mongo, mlflow_resource)
    with endpoint_server.running(create_app(config)) as url, dg.instance_for_test() as instance:
        endpoint = EndpointResource(url=url, admin_token=TOKEN)
        assert deploy(project, mongo, mlflow_resource, endpoint, instance, version=first.version).success

        shadowed = deploy(project, mongo, mlflow_resource, endpoint, instance, role="challenger", version=second.version)
        assert shadowed.success, failure(shadowed)
        assert metadata(shadowed)["challenger_version"] == second.version
        assert metadata(shadowed)["live_version"] == first.version and metadata(shadowed)["role"] == "challenger"
        assert endpoint.version("churn")["challenger"]["version"] == second.version
        assert aliases.alias_version(client, project.model.name, aliases.CHALLENGER) == second.version
        tags = client.get_model_version(project.model.name, second.version).tags
        assert tags["mining.cause"] == "performance" and tags["mining.deployed_as"] == "challenger"

        refused = deploy(project, mongo, mlflow_resource, endpoint, instance, role="challenger", version=failed.version)
        assert not refused.success and "quality gate is 'failed'" in failure(refused)
        itself = deploy(project, mongo, mlflow_resource, endpoint, instance, role="challenger", version=first.version)
        assert not itself.success and "cannot be its own challenger" in failure(itself)
        assert aliases.alias_version(client, project.model.name, aliases.CHALLENGER) == second.version

        retired = deploy(project, mongo, mlflow_resource, endpoint, instance, role="challenger", retire=True)
        assert retired.success, failure(retired)
        assert metadata(retired)["challenger_version"] == "none"
        assert endpoint.version("churn")["challenger"] is None
        assert aliases.alias_version(client, project.model.name, aliases.CHALLENGER) is None

        assert deploy(project, mongo, mlflow_resource, endpoint, instance, role="challenger", version=third.version).success
        promoted = deploy(project, mongo, mlflow_resource, endpoint, instance, version=third.version)
        assert promoted.success, failure(promoted)
        served = endpoint.version("churn")
        assert served["version"] == third.version and served["challenger"] is None
        assert aliases.alias_version(client, project.model.name, aliases.CHALLENGER) is None
        assert aliases.alias_version(client, project.model.name, aliases.PREVIOUS) == first.version
        answer = httpx.post(f"{url}/v1/churn/predict", json={"rows": [dict.fromkeys(FEATURES, 1.0)]}).json()
        assert answer["model"]["version"] == third.version and "challenger" not in answer
        assert np.isfinite(answer["predictions"][0])
    # Every alias move, with its evidence; refusals moved nothing and are not there.
    moves = list(mongo.project_db("churn")[PROMOTIONS].find(sort=[("at", 1)]))
    assert [(m["role"], m["from"], m["to"], m["outcome"]) for m in moves] == [
        ("champion", None, first.version, "served"), ("challenger", None, second.version, "served"),
        ("challenger", second.version, None, "served"), ("challenger", None, third.version, "served"),
        ("champion", first.version, third.version, "served")]
    assert all(m["evidence"]["mining.cause"] == "performance" for m in moves)
    assert moves[1]["evidence"]["mining.performance.decision"] == "test"
    assert moves[1]["replicas"][0]["challenger"] == second.version


def test_a_challenger_reload_reads_mode_and_traffic_again(churn_project, definitions, mongo, mlflow_resource):
    from mining_platform.spec.project import ChallengerConfig, ProjectConfigError

    project = with_challenger(churn_project, "shadow")
    champion, challenger = register(project, mlflow_resource, seed=21), register(project, mlflow_resource, seed=22)
    promote(mlflow_resource, champion)
    set_alias(mlflow_resource, challenger, aliases.CHALLENGER)
    on_disk = {"setting": ChallengerConfig(mode="shadow")}

    def read(name: str) -> ChallengerConfig:
        if on_disk["setting"] is None:
            raise ProjectConfigError(f"projects/{name}/project.yaml: invalid project file")
        return on_disk["setting"]

    config = serving_config(project, definitions, mongo, mlflow_resource, challenger_settings=read)
    with endpoint_server.running(create_app(config)) as url:
        loaded(url, challenger=challenger.version)
        on_disk["setting"] = ChallengerConfig(mode="canary", traffic=0.5)
        reload = httpx.post(f"{url}/v1/churn/reload", params={"role": "challenger"}, headers=ADMIN)
        version = httpx.get(f"{url}/v1/churn/version").json()["challenger"]
        status = httpx.get(f"{url}/health", headers=ADMIN).json()["projects"]["churn"]["challenger"]["status"]
        on_disk["setting"] = None  # the file no longer loads: the reload says so and nothing changes
        broken = httpx.post(f"{url}/v1/churn/reload", params={"role": "challenger"}, headers=ADMIN)
        after = httpx.get(f"{url}/v1/churn/version").json()["challenger"]
    assert reload.status_code == 200 and reload.json()["changed"] is False
    assert (version["mode"], version["traffic"]) == ("canary", 0.5) and status == "running in canary"
    assert broken.status_code == 409 and "invalid project file" in broken.json()["detail"]
    assert (after["mode"], after["version"]) == ("canary", challenger.version)


def test_the_champion_sensor_follows_a_challenger_alias_moved_by_hand(churn_project, definitions, mlflow_resource):
    from sensors.definitions import project_definitions
    from tests.fixtures.specs import make_spec

    project = with_challenger(churn_project, "shadow")
    features = definitions
    definitions = project_definitions(make_spec(project, features))
    sensor = definitions.resolve_sensor_def(f"{project.name}_champion_sensor")
    champion, challenger = register(project, mlflow_resource, seed=31), register(project, mlflow_resource, seed=32)
    promote(mlflow_resource, champion)
    client = mlflow_resource.client()
    op = {"ops": {f"{project.name}__deployment": {"config": {}}}}

    def tick(instance, cursor):
        context = dg.build_sensor_context(instance=instance, cursor=cursor, definitions=definitions,
                                          resources={"mlflow": mlflow_resource})
        return sensor.evaluate_tick(context)

    def deployed(instance, challenger_version: str) -> None:
        instance.report_runless_asset_event(dg.AssetMaterialization(
            asset_key=[project.name, "deployment"],
            metadata={"live_version": champion.version, "challenger_version": challenger_version}))

    with dg.instance_for_test() as instance:
        deployed(instance, "none")
        quiet = tick(instance, None)
        assert not quiet.run_requests and f"deployed with v{champion.version}" in quiet.skip_message
        set_alias(mlflow_resource, challenger, aliases.CHALLENGER)  # by hand, in the MLflow UI
        [follow] = tick(instance, quiet.cursor).run_requests
        op["ops"][f"{project.name}__deployment"]["config"] = {"role": "challenger", "version": challenger.version}
        assert follow.run_config == op and follow.run_key.startswith(f"challenger:{project.name}:{challenger.version}:")
        deployed(instance, challenger.version)
        synced = tick(instance, tick(instance, quiet.cursor).cursor)
        assert not synced.run_requests and f"challenger v{challenger.version}" in synced.skip_message
        client.delete_registered_model_alias(project.model.name, aliases.CHALLENGER)
        [retire] = tick(instance, synced.cursor).run_requests
        op["ops"][f"{project.name}__deployment"]["config"] = {"role": "challenger", "retire": True}
        assert retire.run_config == op and retire.run_key.startswith(f"challenger:{project.name}:none:")
