"""Each resource reaches its real system: embedded MongoDB, an MLflow store, the endpoint."""

import os
import subprocess

import httpx
import pytest
from pymongo import ReadPreference

from mining_platform.deployment.endpoint import EndpointError
from mining_platform.settings import console_script
from resources import EndpointResource, MlflowResource, MongoResource
from tests.conftest import REPO, free_port, wait_until


def test_mongo_resource_writes_and_reads(mongo):
    assert mongo.db().command("ping")["ok"] == 1.0
    mongo.db()["probe"].insert_one({"_id": 1, "x": "written"})
    assert mongo.analytics_db()["probe"].find_one({"_id": 1})["x"] == "written"


def test_mongo_resource_shares_one_client_per_process(mongo):
    assert mongo.client() is mongo.client()
    same_settings = MongoResource(uri=mongo.uri, database="other")
    assert same_settings.client() is mongo.client()


def test_mongo_resource_names_itself_and_sets_analytics_read_preference(mongo_uri):
    resource = MongoResource(uri=mongo_uri, database="x", app_name="mining-test")
    assert resource.client().options.pool_options.metadata["application"]["name"] == "mining-test"
    assert resource.db().read_preference == ReadPreference.PRIMARY
    assert resource.analytics_db().read_preference == ReadPreference.SECONDARY_PREFERRED
    assert resource.analytics_db().command("ping")["ok"] == 1.0


def test_analytics_uri_read_preference_wins(mongo_uri):
    resource = MongoResource(uri=mongo_uri, analytics_uri=mongo_uri + "&readPreference=nearest", database="x")
    assert resource.analytics_db().read_preference == ReadPreference.NEAREST


def test_unknown_read_preference_is_a_clear_error(mongo_uri):
    resource = MongoResource(uri=mongo_uri, database="x", analytics_read_preference="fastest")
    with pytest.raises(ValueError, match="analytics_read_preference: 'fastest' is not one of"):
        resource.analytics_db()


def test_mlflow_resource_tracks_into_its_store(tmp_path):
    resource = MlflowResource(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    client = resource.client()
    experiment_id = client.create_experiment("probe", artifact_location=str(tmp_path / "artifacts"))
    run = client.create_run(experiment_id)
    client.log_metric(run.info.run_id, "auc", 0.75)
    assert client.get_run(run.info.run_id).data.metrics == {"auc": 0.75}


@pytest.fixture
def endpoint_url(tmp_path):
    """`mining-platform serve` as its own process on a free port, with a fresh MINING_HOME."""
    port = free_port()
    env = {**os.environ, "MINING_HOME": str(tmp_path / "home"), "MINING_PROJECTS_DIR": str(REPO / "projects"),
           "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"}
    env.pop("MINING_ADMIN_TOKEN", None)
    server = subprocess.Popen(
        [console_script("mining-platform"), "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"

    def answers() -> bool:
        assert server.poll() is None, f"endpoint exited with {server.returncode}"
        try:
            return httpx.get(url + "/health").status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_until(answers, timeout=60, what="endpoint")
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)


def served(url: str, tmp_path) -> EndpointResource:
    """The resource with the token the endpoint generated into its MINING_HOME: /health details need it."""
    return EndpointResource(url=url, admin_token=(tmp_path / "home" / "admin_token").read_text().strip())


def test_endpoint_resource_reports_health_of_a_served_endpoint(endpoint_url, tmp_path):
    assert httpx.get(endpoint_url + "/health").json()["projects"]["churn"] == {"up": False}
    health = served(endpoint_url, tmp_path).health()
    assert health["status"] == "ok"
    assert health["projects"]["churn"]["model"] == "churn_xgb"
    assert health["projects"]["churn"]["version"] is None
    token_file = tmp_path / "home" / "admin_token"
    assert len(token_file.read_text().strip()) >= 32  # generated once on first start
    assert token_file.stat().st_mode & 0o777 == 0o600


def test_endpoint_says_no_model_is_deployed_yet(endpoint_url, tmp_path):
    endpoint = served(endpoint_url, tmp_path)
    wait_until(lambda: endpoint.health()["projects"]["churn"]["status"] != "loading",
               timeout=30, what="the start-up load")
    assert "has no 'champion' alias" in endpoint.health()["projects"]["churn"]["status"]
    version = httpx.get(endpoint_url + "/v1/churn/version")
    assert version.status_code == 503
    assert "project 'churn' serves no model yet" in version.json()["detail"]
    unknown = httpx.get(endpoint_url + "/v1/nope/version")
    assert unknown.status_code == 404
    assert "unknown project 'nope'" in unknown.json()["detail"]


def test_endpoint_resource_admin_token_comes_from_config_env_or_file(tmp_path, monkeypatch):
    monkeypatch.setenv("MINING_HOME", str(tmp_path))
    monkeypatch.delenv("MINING_ADMIN_TOKEN", raising=False)
    from_file = EndpointResource(url="http://127.0.0.1:1").resolved_admin_token()
    assert from_file == (tmp_path / "admin_token").read_text().strip()
    assert EndpointResource(url="http://127.0.0.1:1").resolved_admin_token() == from_file  # generated once
    monkeypatch.setenv("MINING_ADMIN_TOKEN", "from-env")
    assert EndpointResource(url="http://127.0.0.1:1").resolved_admin_token() == "from-env"
    assert EndpointResource(url="http://127.0.0.1:1", admin_token="set").resolved_admin_token() == "set"


def test_endpoint_resource_fails_loudly_when_nothing_listens():
    with pytest.raises(EndpointError, match="cannot reach the endpoint at http://127.0.0.1:"):
        EndpointResource(url=f"http://127.0.0.1:{free_port()}", timeout_seconds=2).health()
