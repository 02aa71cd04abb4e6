"""Endpoint replicas converge on the serving record with no fan-out list: three `mining-platform serve` processes on
loopback, requests flowing to all of them, and `<p>/deployment` reaching one URL.

The third replica reads a copy of the registry taken before version 3 was registered: it
cannot load version 3 (as a pod that cannot reach the version's artifacts would not). The
replicas follow the serving record by version number, so the copy's stale aliases do not
matter to them.
"""

import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import dagster as dg
import httpx
import pytest
import yaml

from assets.deployment import build_deployment_asset
from mining_platform.registry.aliases import alias_version
from mining_platform.spec.names import PROMOTIONS, SERVING_DESIRED, SERVING_REPLICAS
from mining_platform.tools.embedded_mongo import free_port
from resources import EndpointResource
from tests.conftest import wait_until
from tests.fixtures.model_versions import register_version, unique_model_name
from tests.fixtures.mongo import as_resource

REPO = Path(__file__).resolve().parents[2]
TOKEN = "replica-token"
FEATURES = ["events", "clicks", "spend"]
HEARTBEAT = 0.5


class Replica:
    def __init__(self, name: str, env: dict):
        self.name = name
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = env
        self.process = subprocess.Popen(
            [sys.executable, "-m", "mining_platform.tools.cli", "serve", "--host", "127.0.0.1", "--port", str(self.port)],
            env={**env, "MINING_ENDPOINT_REPLICA": name}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            text=True)

    def version(self) -> str | None:
        try:
            answer = httpx.get(f"{self.url}/v1/churn/version", timeout=5)
        except httpx.HTTPError:
            return None
        return answer.json().get("version") if answer.status_code == 200 else None

    def stop(self) -> str:
        self.process.terminate()
        try:
            _, err = self.process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            _, err = self.process.communicate()
        return err


class Load:
    """Rows requests to every replica in turn from two threads, counting answers that are not 200."""

    def __init__(self, replicas: list[Replica]):
        self.replicas = replicas
        self.stop = threading.Event()
        self.sent = 0
        self.failed: list[str] = []
        self.versions: set[str] = set()
        self.threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(2)]

    def _run(self, offset: int) -> None:
        body = {"rows": [{"events": 3, "clicks": 1, "spend": 2.5}]}
        with httpx.Client(timeout=10) as client:
            i = offset
            while not self.stop.is_set():
                replica = self.replicas[i % len(self.replicas)]
                i += 1
                try:
                    answer = client.post(f"{replica.url}/v1/churn/predict", json=body)
                    if answer.status_code != 200:
                        self.failed.append(f"{replica.name}: {answer.status_code} {answer.text[:200]}")
                    else:
                        self.versions.add(answer.json()["model"]["version"])
                except httpx.HTTPError as exc:
                    self.failed.append(f"{replica.name}: {type(exc).__name__}: {exc}")
                self.sent += 1

    def __enter__(self):
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=30)


@pytest.fixture
def stack(tmp_path, mongo, mlflow_resource):
    model_name = unique_model_name()
    projects = tmp_path / "projects"
    shutil.copytree(REPO / "projects" / "churn", projects / "churn")
    project_file = projects / "churn" / "project.yaml"
    config = yaml.safe_load(project_file.read_text())
    config["model"]["name"] = model_name
    project_file.write_text(yaml.safe_dump(config))
    versions = [register_version(mlflow_resource.tracking_uri, mlflow_resource.artifact_location, model_name,
                                 FEATURES, seed=seed) for seed in (31, 32)]
    # The third replica's registry: a copy from before version 3 exists.
    registry = Path(mlflow_resource.tracking_uri.removeprefix("sqlite:///"))
    stale_registry = tmp_path / "stale-mlflow.db"
    shutil.copy(registry, stale_registry)
    versions.append(register_version(mlflow_resource.tracking_uri, mlflow_resource.artifact_location, model_name,
                                     FEATURES, seed=33))
    env = {**os.environ, "MINING_PROJECTS_DIR": str(projects), "MINING_MONGO_URI": mongo.uri,
           "MINING_MONGO_DB": mongo.database, "MLFLOW_TRACKING_URI": mlflow_resource.tracking_uri,
           "MINING_ADMIN_TOKEN": TOKEN, "MINING_PREDICTION_LOG_SAMPLE_RATE": "0",
           "MINING_ENDPOINT_HEARTBEAT_SECONDS": str(HEARTBEAT)}
    replicas = [Replica("replica-1", env), Replica("replica-2", env),
                Replica("replica-3", {**env, "MLFLOW_TRACKING_URI": f"sqlite:///{stale_registry}"})]
    try:
        wait_until(lambda: all(r.process.poll() is not None or _up(r) for r in replicas), timeout=120,
                   what="three endpoint replicas")
        for replica in replicas:
            assert replica.process.poll() is None, f"{replica.name} exited: {replica.stop()}"
        yield model_name, [v.version for v in versions], replicas
    finally:
        for replica in replicas:
            replica.stop()


def _up(replica: Replica) -> bool:
    """Answering and known to the deployer: a replica that has not beaten yet is not waited for (by design)."""
    try:
        answer = httpx.get(f"{replica.url}/health", timeout=2, headers={"Authorization": f"Bearer {TOKEN}"})
    except httpx.HTTPError:
        return False
    return answer.status_code == 200 and (answer.json().get("replica") or {}).get("heartbeats", 0) >= 1


def deploy(project, mongo, mlflow_resource, url: str, instance, version: str):
    return dg.materialize(
        [build_deployment_asset(project)], instance=instance, raise_on_error=False,
        resources={"mlflow": mlflow_resource, "mongo": as_resource(mongo),
                   "endpoint": EndpointResource(url=url, admin_token=TOKEN, converge_timeout_seconds=60)},
        run_config={"ops": {f"{project.name}__deployment": {"config": {"version": version}}}})


def metadata(result) -> dict:
    return {k: v.value for k, v in result.get_asset_materialization_events()[0].materialization.metadata.items()}


def test_a_move_reaches_every_replica_under_load_and_a_replica_that_cannot_load_fails_it(
        stack, churn_project, mongo, mlflow_resource):
    model_name, (v1, v2, v3), replicas = stack
    project = churn_project.model_copy(update={"model": churn_project.model.model_copy(update={"name": model_name})})
    namespace = mongo.project_db(project.name)
    client = mlflow_resource.client()
    with dg.instance_for_test() as instance:
        # Only the first replica's URL is known to the deployment, as behind a Service.
        first = deploy(project, mongo, mlflow_resource, replicas[0].url, instance, v1)
        assert first.success, first.get_step_failure_events()
        assert {r.version() for r in replicas} == {v1}
        load = Load(replicas).__enter__()  # requests flow to all three from now on
        second = deploy(project, mongo, mlflow_resource, replicas[0].url, instance, v2)
        assert second.success, second.get_step_failure_events()
        served_after_second = {r.name: r.version() for r in replicas}
        third = deploy(project, mongo, mlflow_resource, replicas[0].url, instance, v3)
        # The replicas that took version 3 follow the restored record back to version 2.
        wait_until(lambda: all(r.version() == v2 for r in replicas), timeout=30, what="every replica back on v2")
        load.__exit__()
        run_tags = instance.get_run_by_id(second.run_id).tags
    errors = {r.name: r.stop() for r in replicas}

    assert served_after_second == {"replica-1": v2, "replica-2": v2, "replica-3": v2}
    shown = metadata(second)
    assert shown["replica_count"] == 3
    assert sorted(r["replica"] for r in shown["replicas"]) == ["replica-1", "replica-2", "replica-3"]
    assert all(r["version"] == v2 for r in shown["replicas"])
    assert shown["moved_by"] == "deployment" and shown["promotion"]["from"] == v1 and shown["promotion"]["to"] == v2

    assert not third.success
    message = third.get_step_failure_events()[0].step_failure_data.user_failure_data.description
    assert "replica replica-3 (host " in message and f"could not load version {v3} as champion" in message
    assert "It keeps serving version " + v2 in message
    assert alias_version(client, model_name, "champion") == v2  # restored
    assert namespace[SERVING_DESIRED].find_one({"_id": "champion"})["version"] == v2

    assert load.failed == [], load.failed[:5]
    assert load.sent > 50 and load.versions >= {v1, v2, v3}  # v3 answered on the replicas that took it

    moves = list(namespace[PROMOTIONS].find(sort=[("at", 1)]))
    assert [(m["from"], m["to"], m["outcome"]) for m in moves] == [
        (None, v1, "served"), (v1, v2, "served"), (v2, v3, "restored")]
    assert "replica-3" in moves[-1]["error"]
    assert moves[1]["moved_by"]["run_id"] == second.run_id and moves[1]["evidence"]["mining.gate"] == "passed"
    assert run_tags["mining.promotion.to"] == v2 and run_tags["mining.promotion.kind"] == "deployment"
    # Stopped replicas remove their heartbeats: a deployment after them waits for nobody that is gone.
    assert mongo.endpoint_db(project.name)[SERVING_REPLICAS].count_documents({}) == 0, errors


def test_replicas_started_later_together_and_alone_serve_within_seconds(stack, churn_project, mongo, mlflow_resource):
    """A new pod on a server that has served a while, after a deployment: started two at once, then one alone, each
    beats and serves the deployed version within seconds (they once stayed "loading" with no heartbeat)."""
    model_name, (v1, v2, _), replicas = stack
    project = churn_project.model_copy(update={"model": churn_project.model.model_copy(update={"name": model_name})})
    env = replicas[0].env
    with dg.instance_for_test() as instance:
        assert deploy(project, mongo, mlflow_resource, replicas[0].url, instance, v2).success
        for batch in (["later-1", "later-2"], ["later-3"]):
            started = [Replica(name, env) for name in batch]
            try:
                wait_until(lambda: all(_up(r) and r.version() == v2 for r in started), timeout=60,
                           what=f"{', '.join(batch)} serving v{v2}")
                health = httpx.get(f"{started[0].url}/health", headers={"Authorization": f"Bearer {TOKEN}"}).json()
                assert health["replica"]["last_error"] is None, health["replica"]
            finally:
                errors = [r.stop() for r in started]
            assert not any("killCursors" in e or "Traceback" in e for e in errors), errors
        # The replicas that stopped are gone from the heartbeats: the next deployment waits for the three only.
        done = deploy(project, mongo, mlflow_resource, replicas[0].url, instance, v1)
        assert done.success and metadata(done)["replica_count"] == 3
