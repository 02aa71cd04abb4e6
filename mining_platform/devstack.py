"""`make dev`: the embedded stack on loopback, supervised by honcho.

honcho starts every service in its own process group, multiplexes their output,
and on Ctrl-C (or when any service dies) sends SIGTERM to every group, then
SIGKILL to what is left. This module only decides what to run, with which
environment, and reports when each service answers.
"""

import os
import shlex
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import yaml
from honcho.manager import Manager
from pymongo import uri_parser

from mining_platform import embedded_mongo, settings

LOOPBACK = {"127.0.0.1", "localhost", "::1"}
RUN_RETRIES_YAML = """\
run_retries:
  # Steps retry passing MongoDB/MLflow/endpoint outages themselves (RetryPolicy, with
  # backoff); a whole run is retried only when it died outside a step (its worker was
  # killed or ran out of memory), and at most twice.
  enabled: true
  max_retries: 2
  retry_on_asset_or_op_failure: false
"""
DAGSTER_INSTANCE_YAML = """\
# Written once by `mining-platform dev`; edit freely.
telemetry:
  enabled: false
concurrency:
  runs:
    # A 2-core laptop and the embedded MongoDB: queue runs beyond a few at once.
    max_concurrent_runs: 3
""" + RUN_RETRIES_YAML


# honcho's return code when it stopped the stack on SIGINT (Ctrl-C) or SIGTERM.
STOPPED_BY_SIGNAL = {130, 143}


@dataclass(frozen=True)
class Service:
    name: str
    command: list[str]
    url: str
    is_ready: Callable[[], bool]
    port: int


def _http_ok(url: str) -> Callable[[], bool]:
    def probe() -> bool:
        try:
            return httpx.get(url, timeout=2.0).status_code == 200
        except httpx.HTTPError:
            return False

    return probe


def _loopback_port(url: str) -> int | None:
    """The port of a URL on this machine, or None when it points elsewhere."""
    parts = urlsplit(url)
    return parts.port if parts.hostname in LOOPBACK else None


def plan_services(env: dict[str, str], home: Path, *, dagster_port: int) -> list[Service]:
    """The services to start: the embedded ones only where the configured URL is on loopback."""
    workspace = Path("workspace.yaml").resolve()
    if not workspace.is_file():
        raise FileNotFoundError(f"{workspace} not found: run `make dev` from the repository root")
    services = []
    mongo_uri = env["MINING_MONGO_URI"]
    nodes = uri_parser.parse_uri(mongo_uri)["nodelist"]
    if len(nodes) == 1 and nodes[0][0] in LOOPBACK:
        services.append(Service(
            "mongo",
            embedded_mongo.server_command(port=nodes[0][1], storage=home / "mongo"),
            mongo_uri,
            lambda: embedded_mongo.answers(mongo_uri),
            nodes[0][1],
        ))
    mlflow_port = _loopback_port(env["MLFLOW_TRACKING_URI"])
    if mlflow_port:
        services.append(Service(
            "mlflow",
            [settings.console_script("mlflow"), "server", "--host", "127.0.0.1", "--port", str(mlflow_port), "--workers", "1",
             "--backend-store-uri", f"sqlite:///{home / 'mlflow' / 'mlflow.db'}",
             "--artifacts-destination", str(home / "mlflow" / "artifacts")],
            f"http://127.0.0.1:{mlflow_port}",
            _http_ok(f"http://127.0.0.1:{mlflow_port}/health"),
            mlflow_port,
        ))
    endpoint_port = _loopback_port(env["MINING_ENDPOINT_URL"])
    if endpoint_port:
        services.append(Service(
            "endpoint",
            [settings.console_script("mining-platform"), "serve", "--host", "127.0.0.1", "--port", str(endpoint_port)],
            f"http://127.0.0.1:{endpoint_port}/docs",
            _http_ok(f"http://127.0.0.1:{endpoint_port}/health"),
            endpoint_port,
        ))
    services.append(Service(
        "dagster",
        [settings.console_script("dagster"), "dev", "-w", str(workspace),
         "-h", "127.0.0.1", "-p", str(dagster_port)],
        f"http://127.0.0.1:{dagster_port}",
        _http_ok(f"http://127.0.0.1:{dagster_port}/server_info"),
        dagster_port,
    ))
    return services


def port_in_use(port: int) -> bool:
    """True when something listens on this loopback port."""
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def ports_in_use(services: list[Service]) -> list[str]:
    """Services whose port something already listens on (often a dev stack left running)."""
    return [f"{s.name} (port {s.port})" for s in services if port_in_use(s.port)]


def stack_environment(home: Path) -> dict[str, str]:
    """Every setting resolved (defaults applied, paths absolute), for all child processes."""
    env = dict(os.environ)
    for name in settings.DEFAULTS:
        env[name] = settings.setting(name)
    env["MINING_HOME"] = str(home)
    env["MINING_PROJECTS_DIR"] = str(settings.projects_dir())
    env.setdefault("MINING_MONGO_ANALYTICS_URI", env["MINING_MONGO_URI"])
    env["MINING_ADMIN_TOKEN"] = settings.admin_token()
    env["DAGSTER_HOME"] = str(home / "dagster")
    return env


def prepare_home(home: Path) -> None:
    for sub in ("mongo", "mlflow/artifacts", "dagster"):
        (home / sub).mkdir(parents=True, exist_ok=True)
    instance_yaml = home / "dagster" / "dagster.yaml"
    if not instance_yaml.exists():
        instance_yaml.write_text(DAGSTER_INSTANCE_YAML)
    elif "run_retries" not in (yaml.safe_load(instance_yaml.read_text()) or {}):
        # A home from before run retries: add them, keep everything the user wrote.
        with instance_yaml.open("a") as file:
            file.write("\n" + RUN_RETRIES_YAML)


LOCATIONS_QUERY = """{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus
  locationOrLoadError { __typename ... on PythonError { message } } } } } }"""


def code_location_errors(dagster_url: str, *, timeout: float = 120.0) -> dict[str, str]:
    """Load errors of the webserver's code locations, once none is still loading.

    A bad project or feature file fails only its own code location: the stack runs
    on, and this is how the terminal learns why a location is missing in the UI.
    """
    deadline = time.monotonic() + timeout
    while True:
        response = httpx.post(f"{dagster_url}/graphql", json={"query": LOCATIONS_QUERY}, timeout=30)
        entries = response.json()["data"]["workspaceOrError"]["locationEntries"]
        if all(e["loadStatus"] != "LOADING" for e in entries) or time.monotonic() > deadline:
            return {
                e["name"]: e["locationOrLoadError"]["message"]
                for e in entries
                if (e["locationOrLoadError"] or {}).get("__typename") == "PythonError"
            }
        time.sleep(0.5)


def _report_readiness(
    services: list[Service], home: Path, manager: Manager, timeout: float, stopped: threading.Event
) -> None:
    deadline = time.monotonic() + timeout
    waiting = list(services)
    while waiting and not stopped.is_set():
        for service in list(waiting):
            if service.is_ready():
                waiting.remove(service)
                print(f"[dev] {service.name} is ready: {service.url}", flush=True)
        if waiting and time.monotonic() > deadline:
            names = ", ".join(s.name for s in waiting)
            print(f"[dev] not ready after {timeout:.0f}s: {names}; stopping the stack", flush=True)
            manager.terminate()
            return
        stopped.wait(0.5)
    if not waiting:
        print("[dev] the mining platform dev stack is ready:", flush=True)
        for service in services:
            print(f"[dev]   {service.name:<9} {service.url}", flush=True)
        print(f"[dev] Ctrl-C stops every service; data stays under {home}", flush=True)
        dagster = next(s for s in services if s.name == "dagster")
        for name, message in code_location_errors(dagster.url).items():
            print(f"[dev] code location {name!r} failed to load; fix it, then reload it in the UI "
                  f"(Deployment > Code locations > Reload):\n{message.rstrip()}", flush=True)


def run_dev_stack(*, dagster_port: int = 3000, ready_timeout: float = 300.0) -> int:
    home = settings.mining_home()
    prepare_home(home)
    env = stack_environment(home)
    services = plan_services(env, home, dagster_port=dagster_port)
    busy = ports_in_use(services)
    if busy:
        print(f"[dev] already in use: {', '.join(busy)}. Stop what holds them (another `make dev`?) "
              "or point the matching MINING_* / MLFLOW_TRACKING_URI variable elsewhere.", file=sys.stderr)
        return 1

    manager = Manager()
    for service in services:
        # exec: honcho runs commands through /bin/sh; without it honcho would watch the
        # shell, and report a service stopped while the server itself still shuts down.
        manager.add_process(service.name, "exec " + shlex.join(service.command), env=env)
    stopped = threading.Event()
    reporter = threading.Thread(
        target=_report_readiness, args=(services, home, manager, ready_timeout, stopped), daemon=True
    )
    reporter.start()
    try:
        manager.loop()
    finally:
        stopped.set()
    if manager.returncode in STOPPED_BY_SIGNAL:
        return 0
    # A service ended by itself and honcho stopped the rest: that is a failure,
    # whatever exit code the service had.
    print("[dev] a service stopped on its own (see its log above); the stack was stopped", file=sys.stderr)
    return 1
