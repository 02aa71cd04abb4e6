"""`mining-platform dev`: what it starts, that it becomes ready, and that Ctrl-C stops everything."""

import os
import re
import shutil
import signal
import subprocess
import threading
from pathlib import Path

import dagster as dg
import httpx
import psutil
import pytest
from pymongo import MongoClient
from pymongo.errors import OperationFailure

from mining_platform.access import credentials
from mining_platform.settings import console_script
from mining_platform.tools.devstack import plan_services, port_in_use, prepare_home
from tests.conftest import REPO, free_port, wait_until

READY_LINE = "dev stack is ready"


def stack_env(**overrides) -> dict[str, str]:
    env = {
        "MINING_MONGO_URI": "mongodb://127.0.0.1:27027/?directConnection=true",
        "MLFLOW_TRACKING_URI": "http://127.0.0.1:5000",
        "MINING_ENDPOINT_URL": "http://127.0.0.1:8080",
    }
    return {**env, **overrides}


def test_plan_starts_embedded_services_on_their_loopback_ports(tmp_path):
    services = {s.name: s for s in plan_services(stack_env(), tmp_path, dagster_port=3000)}
    assert list(services) == ["mongo", "mlflow", "endpoint", "dagster"]
    mongo = services["mongo"].command
    assert mongo[mongo.index("--port") + 1] == "27027"
    assert mongo[mongo.index("--storage-path") + 1] == str(tmp_path / "mongo")
    mlflow = " ".join(services["mlflow"].command)
    assert "--port 5000" in mlflow and f"sqlite:///{tmp_path / 'mlflow' / 'mlflow.db'}" in mlflow
    assert "--port 8080" in " ".join(services["endpoint"].command)
    assert "-p 3000" in " ".join(services["dagster"].command)


def test_plan_skips_services_that_are_configured_elsewhere(tmp_path):
    remote = stack_env(
        MINING_MONGO_URI="mongodb://db1.internal:27017,db2.internal:27017/?replicaSet=rs0",
        MLFLOW_TRACKING_URI="https://mlflow.internal",
    )
    assert [s.name for s in plan_services(remote, tmp_path, dagster_port=3000)] == ["endpoint", "dagster"]


def test_prepare_home_writes_a_valid_instance_once(tmp_path):
    prepare_home(tmp_path)
    with dg.DagsterInstance.from_config(str(tmp_path / "dagster")) as dagster_instance:
        concurrency = dagster_instance.get_concurrency_config()
        assert concurrency.run_queue_config.max_concurrent_runs == 3
        [per_project] = concurrency.run_queue_config.tag_concurrency_limits
        assert per_project == {"key": "dagster/code_location", "value": {"applyLimitPerUniqueValue": True},
                               "limit": 2}
        assert concurrency.pool_config.default_pool_limit == 2
        assert dagster_instance.run_retries_enabled and dagster_instance.run_retries_max_retries == 2
        assert not dagster_instance.run_retries_retry_on_asset_or_op_failure
    instance = tmp_path / "dagster" / "dagster.yaml"
    instance.write_text("# mine\nrun_retries: {enabled: false}\n")
    prepare_home(tmp_path)
    assert instance.read_text() == "# mine\nrun_retries: {enabled: false}\n"


def test_a_new_home_dequeues_runs_every_second_and_ticks_sensors_in_threads(tmp_path):
    prepare_home(tmp_path)
    with dg.DagsterInstance.from_config(str(tmp_path / "dagster")) as dagster_instance:
        coordinator = dagster_instance.run_coordinator
        assert type(coordinator).__name__ == "QueuedRunCoordinator" and coordinator.dequeue_interval_seconds == 1
        assert dagster_instance.get_settings("sensors") == {"use_threads": True, "num_workers": 4}
        assert dagster_instance.get_settings("schedules") == {"use_threads": True, "num_workers": 2}


def test_prepare_home_makes_an_older_home_private(tmp_path, capsys):
    home = tmp_path / "home"
    before = os.umask(0o022)
    try:
        (home / "mongo").mkdir(parents=True, mode=0o755)
        (home / "mongo" / "collection-0.wt").write_text("data")
        (home / "mongo" / "collection-0.wt").chmod(0o644)
        prepare_home(home)
        assert "tightened 3 path(s)" in capsys.readouterr().out
        modes = {p.relative_to(home).as_posix(): p.stat().st_mode & 0o777 for p in [home, *home.rglob("*")]}
        assert modes["."] == 0o700 and modes["mongo"] == 0o700 and modes["mongo/collection-0.wt"] == 0o600
        assert modes["dagster"] == 0o700 and modes["dagster/dagster.yaml"] == 0o600
        prepare_home(home)
        assert "tightened" not in capsys.readouterr().out
    finally:
        os.umask(before)


def test_prepare_home_adds_run_retries_to_an_older_instance_file(tmp_path):
    instance = tmp_path / "dagster" / "dagster.yaml"
    instance.parent.mkdir(parents=True)
    instance.write_text("# mine\ntelemetry:\n  enabled: false\n")
    prepare_home(tmp_path)
    assert instance.read_text().startswith("# mine\ntelemetry:\n  enabled: false\n")
    with dg.DagsterInstance.from_config(str(tmp_path / "dagster")) as dagster_instance:
        assert dagster_instance.run_retries_enabled and not dagster_instance.run_retries_retry_on_asset_or_op_failure


class DevStack:
    """`mining-platform dev` in its own process group, as a terminal runs it."""

    def __init__(self, env: dict[str, str]):
        self.process = subprocess.Popen(
            [console_script("mining-platform"), "dev", "--dagster-port", env["TEST_DAGSTER_PORT"], "--ready-timeout", "240"],
            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            start_new_session=True,
        )
        self.lines: list[str] = []
        self.ready = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.append(line)
            if READY_LINE in line:
                self.ready.set()
        self.ready.set()  # output ended: wake the waiter, which then sees the exit

    def wait_ready(self) -> None:
        assert self.ready.wait(300), "dev stack not ready in 300s:\n" + "".join(self.lines[-40:])
        assert self.process.poll() is None, "dev stack exited:\n" + "".join(self.lines[-40:])

    def interrupt(self) -> list[psutil.Process]:
        """Ctrl-C: SIGINT to the foreground process group. Returns every process it had started."""
        descendants = psutil.Process(self.process.pid).children(recursive=True)
        os.killpg(self.process.pid, signal.SIGINT)
        self.process.wait(timeout=60)
        return descendants


def survivors(processes: list[psutil.Process]) -> list[str]:
    alive = []
    for p in processes:
        try:
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                alive.append(f"{p.pid} {' '.join(p.cmdline())[:120]}")
        except psutil.NoSuchProcess:
            pass
    return alive


@pytest.fixture
def dev_env(tmp_path) -> dict[str, str]:
    ports = {name: free_port() for name in ("mongo", "mlflow", "endpoint", "dagster")}
    env = {**os.environ, **stack_env(
        MINING_MONGO_URI=f"mongodb://127.0.0.1:{ports['mongo']}/?directConnection=true",
        MLFLOW_TRACKING_URI=f"http://127.0.0.1:{ports['mlflow']}",
        MINING_ENDPOINT_URL=f"http://127.0.0.1:{ports['endpoint']}",
    )}
    env.update(MINING_HOME=str(tmp_path / "home"), TEST_DAGSTER_PORT=str(ports["dagster"]))
    for name in ("MINING_MONGO_ANALYTICS_URI", "MINING_ADMIN_TOKEN", "DAGSTER_HOME"):
        env.pop(name, None)
    env["TEST_PORTS"] = ",".join(str(p) for p in ports.values())
    return env


def test_dev_stack_starts_serves_and_stops_cleanly_then_reuses_its_data(dev_env):
    ports = [int(p) for p in dev_env["TEST_PORTS"].split(",")]
    home = Path(dev_env["MINING_HOME"])

    stack = DevStack(dev_env)
    try:
        stack.wait_ready()
        # Authentication is on: nothing without a user; the administrator's login is in the credentials file.
        with MongoClient(dev_env["MINING_MONGO_URI"], serverSelectionTimeoutMS=5000) as anonymous:
            with pytest.raises(OperationFailure, match="requires authentication"):
                anonymous.mining.marker.insert_one({"_id": "anonymous"})
        logins = credentials.load(home)
        assert set(logins["projects"]) == {"churn", "spend"} and credentials.ENDPOINT in logins
        with MongoClient(credentials.with_login(dev_env["MINING_MONGO_URI"], logins[credentials.ADMIN]),
                         serverSelectionTimeoutMS=5000) as client:
            client.mining.marker.insert_one({"_id": "kept"})
        # Each process has the secrets it needs and no others.
        environments = {" ".join(p.cmdline()): p.environ() for p in psutil.Process(stack.process.pid).children(True)}
        endpoint_env = next(e for cmd, e in environments.items() if " serve " in f"{cmd} ")
        mongo_env = next(e for cmd, e in environments.items() if "secantusd" in cmd)
        mlflow_env = next(e for cmd, e in environments.items() if "mlflow server" in cmd)
        dagster_env = next(e for cmd, e in environments.items() if "dagster dev" in cmd)
        assert endpoint_env["MINING_ADMIN_TOKEN"] and "mining_endpoint" in endpoint_env["MINING_MONGO_URI"]
        assert "MINING_ADMIN_TOKEN" not in mongo_env and "MINING_ADMIN_TOKEN" not in mlflow_env
        assert not any(name.startswith("MINING_MONGO_URI_") for name in {**mongo_env, **mlflow_env, **endpoint_env})
        assert "@" not in mongo_env["MINING_MONGO_URI"] and "@" not in dagster_env["MINING_MONGO_URI"]
        assert "mining_project_churn" in dagster_env["MINING_MONGO_URI_CHURN"]
        assert httpx.get(dev_env["MLFLOW_TRACKING_URI"] + "/health").status_code == 200
        health = httpx.get(dev_env["MINING_ENDPOINT_URL"] + "/health").json()
        assert {"churn", "spend"} <= health["projects"].keys()
        workspace = httpx.post(
            f"http://127.0.0.1:{dev_env['TEST_DAGSTER_PORT']}/graphql",
            json={"query": "{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus "
                           "locationOrLoadError { __typename } } } } }"},
            timeout=30,
        ).json()["data"]["workspaceOrError"]["locationEntries"]
        assert sorted((e["name"], e["locationOrLoadError"]["__typename"]) for e in workspace) == [
            ("churn", "RepositoryLocation"), ("spend", "RepositoryLocation")
        ]
        # The start-up output carries no Python warning (deprecations, beta and superseded APIs).
        warned = [line for line in stack.lines if re.search(r"\w+Warning: ", line)]
        assert warned == []
    finally:
        started = stack.interrupt()

    assert len(started) >= 4
    assert survivors(started) == []
    assert not any(port_in_use(p) for p in ports)
    assert (home / "admin_token").exists() and (home / "dagster" / "dagster.yaml").exists()
    # Everything the stack wrote (MongoDB's files, MLflow's database and artifacts, Dagster's home) is its user's.
    readable = [f"{p} {p.stat().st_mode & 0o777:04o}" for p in [home, *home.rglob("*")]
                if not p.is_symlink() and p.stat().st_mode & 0o077]
    assert readable == [], readable[:10]
    assert any((home / "mongo").rglob("*.wt")) or any((home / "mongo").iterdir())
    (home / "mongo").chmod(0o755)  # an older home: tightened at the next start, saying so

    # The second start also has a broken feature file: the stack runs, and says why churn is missing.
    projects = Path(dev_env["MINING_HOME"]).parent / "projects"
    shutil.copytree(REPO / "projects", projects)
    broken = projects / "churn" / "features" / "user_activity.yaml"
    broken.write_text(broken.read_text().replace("owner: growth-ds\n", ""))
    again = DevStack({**dev_env, "MINING_PROJECTS_DIR": str(projects)})
    try:
        again.wait_ready()
        with MongoClient(credentials.with_login(dev_env["MINING_MONGO_URI"], credentials.load(home)["admin"]),
                         serverSelectionTimeoutMS=5000) as client:
            assert client.mining.marker.find_one({"_id": "kept"}) == {"_id": "kept"}
        wait_until(lambda: any("failed to load" in line for line in again.lines), timeout=120,
                   what="the code location error report")
        output = "".join(again.lines)
        assert f"{home} was readable by other accounts: tightened 1 path(s)" in output
        assert "code location 'churn' failed to load" in output
        assert f"{broken}: 1 problem" in output and "owner: missing required key" in output
    finally:
        assert survivors(again.interrupt()) == []


def test_dev_refuses_to_start_when_a_port_is_taken(dev_env):
    import socket

    with socket.socket() as holder:
        holder.bind(("127.0.0.1", int(dev_env["TEST_DAGSTER_PORT"])))
        holder.listen()
        result = subprocess.run(
            [console_script("mining-platform"), "dev", "--dagster-port", dev_env["TEST_DAGSTER_PORT"]],
            cwd=REPO, env=dev_env, capture_output=True, text=True, timeout=60,
        )
    assert result.returncode == 1
    assert f"already in use: dagster (port {dev_env['TEST_DAGSTER_PORT']})" in result.stderr


def test_a_service_failing_stops_the_stack_with_an_error(dev_env):
    # An invalid endpoint setting makes `mining-platform serve` exit at start.
    stack = DevStack({**dev_env, "MINING_PREDICTION_LOG_SAMPLE_RATE": "2"})
    try:
        code = stack.process.wait(timeout=120)
    finally:
        if stack.process.poll() is None:
            stack.interrupt()
    output = "".join(stack.lines)
    assert code == 1, output[-3000:]
    assert "MINING_PREDICTION_LOG_SAMPLE_RATE must be within [0, 1], got 2.0" in output
    assert "a service stopped on its own" in output
    ports = [int(p) for p in dev_env["TEST_PORTS"].split(",")]
    assert not any(port_in_use(p) for p in ports), "a service outlived the stack"
