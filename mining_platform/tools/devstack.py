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
from honcho.manager import Manager

from mining_platform import settings
from mining_platform.access import credentials
from mining_platform.tools import embedded_mongo
from mining_platform.tools.dev_home import (
    LOOPBACK,
    embedded_mongo_port,
    prepare_home,
    secure_embedded_mongo,
    stack_environment,
)

# honcho's return code when it stopped the stack on SIGINT (Ctrl-C) or SIGTERM.
STOPPED_BY_SIGNAL = {130, 143}


@dataclass(frozen=True)
class Service:
    name: str
    command: list[str]
    url: str
    is_ready: Callable[[], bool]
    port: int
    secrets: tuple[str, ...] = ()  # the secret variables this service gets (nothing else gets them)
    # Warnings a third-party tool prints on every start that say nothing about this stack (message prefixes):
    # silenced for that process only, through PYTHONWARNINGS, so the start-up output shows what matters.
    quiet: tuple[str, ...] = ()


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
    port = embedded_mongo_port(mongo_uri)
    if port:
        services.append(Service(
            "mongo",
            embedded_mongo.server_command(port=port, storage=home / "mongo"),
            credentials.redacted(mongo_uri),
            lambda: embedded_mongo.answers(mongo_uri),
            port,
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
            # MLflow's own server module imports starlette's WSGI middleware (mlflow 3.17's doing, not ours).
            quiet=("starlette.middleware.wsgi is deprecated",),
        ))
    endpoint_port = _loopback_port(env["MINING_ENDPOINT_URL"])
    if endpoint_port:
        services.append(Service(
            "endpoint",
            [settings.console_script("mining-platform"), "serve", "--host", "127.0.0.1", "--port", str(endpoint_port)],
            f"http://127.0.0.1:{endpoint_port}/docs",
            _http_ok(f"http://127.0.0.1:{endpoint_port}/health"),
            endpoint_port,
            secrets=("MINING_ADMIN_TOKEN", "MINING_MONGO_URI"),
        ))
    services.append(Service(
        "dagster",
        [settings.console_script("dagster"), "dev", "-w", str(workspace),
         "-h", "127.0.0.1", "-p", str(dagster_port)],
        f"http://127.0.0.1:{dagster_port}",
        _http_ok(f"http://127.0.0.1:{dagster_port}/server_info"),
        dagster_port,
        secrets=("MINING_ADMIN_TOKEN", "MINING_MONGO_URI_*"),
        # `dg dev` needs the dagster-dg-cli package and a dg project layout; `dagster dev` is supported in 1.13.
        quiet=("Function `dev_command` is superseded",),
    ))
    return services


def service_environment(service: Service, env: dict[str, str], secrets: dict[str, str]) -> dict[str, str]:
    """`env` plus the secrets this service is meant to have, and no other."""
    given = dict(env)
    for name, value in secrets.items():
        if any(name == wanted or (wanted.endswith("*") and name.startswith(wanted[:-1])) for wanted in service.secrets):
            given[name] = value
    if service.quiet:
        # -W syntax: action:message-prefix; a ':' or ',' in a prefix would end it, so the prefixes hold none.
        given["PYTHONWARNINGS"] = ",".join(
            [*filter(None, [env.get("PYTHONWARNINGS")]), *(f"ignore:{prefix}" for prefix in service.quiet)])
    return given


def port_in_use(port: int) -> bool:
    """True when something listens on this loopback port."""
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def ports_in_use(services: list[Service]) -> list[str]:
    """Services whose port something already listens on (often a dev stack left running)."""
    return [f"{s.name} (port {s.port})" for s in services if port_in_use(s.port)]


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
    os.umask(settings.PRIVATE)  # inherited by every service: the files they create are 0600, their folders 0700
    prepare_home(home)
    env = stack_environment(home)
    services = plan_services(env, home, dagster_port=dagster_port)
    busy = ports_in_use(services)
    if busy:
        print(f"[dev] already in use: {', '.join(busy)}. Stop what holds them (another `make dev`?) "
              "or point the matching MINING_* / MLFLOW_TRACKING_URI variable elsewhere.", file=sys.stderr)
        return 1

    secrets = {"MINING_ADMIN_TOKEN": settings.admin_token()}
    if embedded_mongo_port(env["MINING_MONGO_URI"]):
        try:
            secrets.update(secure_embedded_mongo(env, home))
        except Exception as exc:  # noqa: BLE001 - any failure to set up users stops the start, saying why
            print(f"[dev] could not set up the embedded MongoDB's users: {type(exc).__name__}: {exc}", file=sys.stderr)
            return 1
    if "MINING_MONGO_URI" not in secrets:  # a server of the operator's own: every process uses its URI
        secrets["MINING_MONGO_URI"] = env["MINING_MONGO_URI"]
    else:  # the embedded server: only the endpoint gets a user through MINING_MONGO_URI
        env["MINING_MONGO_URI"] = credentials.with_login(env["MINING_MONGO_URI"], None)

    manager = Manager()
    for service in services:
        # exec: honcho runs commands through /bin/sh; without it honcho would watch the
        # shell, and report a service stopped while the server itself still shuts down.
        manager.add_process(service.name, "exec " + shlex.join(service.command),
                            env=service_environment(service, env, secrets))
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
