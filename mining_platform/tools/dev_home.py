"""The dev stack's home (`MINING_HOME`, default `.mining`): private folders for MongoDB, MLflow and Dagster, the
Dagster instance file written once (run queue, per-project limits, pools, run retries, the daemon's loops), the
settings every child process gets, and the embedded server's users (provisioned before the stack starts)."""

import os
from collections.abc import Callable
from pathlib import Path

import yaml
from pymongo import MongoClient, uri_parser

from mining_platform import settings
from mining_platform.access import credentials, provision
from mining_platform.spec.project import ProjectConfigError, load_project, project_names
from mining_platform.tools import embedded_mongo

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
# The daemon's loops, tuned for a responsive loop on one machine: a launched run leaves the queue within a second
# (Dagster's default checks every 5 s, which a one-day run would mostly spend waiting), and sensors and schedules
# tick in threads, so a slow tick of one project never delays another's.
DAEMON_YAML = {
    "run_coordinator": """\
run_coordinator:
  module: dagster.core.run_coordinator
  class: QueuedRunCoordinator
  config:
    dequeue_interval_seconds: 1
    dequeue_use_threads: true
    dequeue_num_workers: 2
""",
    "sensors": """\
sensors:
  use_threads: true
  num_workers: 4
""",
    "schedules": """\
schedules:
  use_threads: true
  num_workers: 2
""",
}
DAGSTER_INSTANCE_YAML = """\
# Written once by `mining-platform dev`; edit freely.
telemetry:
  enabled: false
concurrency:
  runs:
    # A 2-core laptop and the embedded MongoDB: queue runs beyond a few at once.
    max_concurrent_runs: 3
    tag_concurrency_limits:
      # Per project (its code location): one project's backfill never takes every slot.
      - key: dagster/code_location
        value: {applyLimitPerUniqueValue: true}
        limit: 2
  pools:
    # Steps that aggregate in or bulk-write to MongoDB (pool `mongodb`) at once, across all runs.
    default_limit: 2
""" + RUN_RETRIES_YAML + "".join(DAEMON_YAML.values())


def stack_environment(home: Path) -> dict[str, str]:
    """Every setting resolved (defaults applied, paths absolute), for all child processes; no secrets
    (the admin token and MongoDB users are added per service, `service_environment`)."""
    env = {name: value for name, value in os.environ.items() if name != "MINING_ADMIN_TOKEN"}
    for name in settings.DEFAULTS:
        env[name] = settings.setting(name)
    env["MINING_HOME"] = str(home)
    env["MINING_PROJECTS_DIR"] = str(settings.projects_dir())
    env["DAGSTER_HOME"] = str(home / "dagster")
    return env


def prepare_home(home: Path) -> None:
    """The stack's home, private to its user (0700 folders, 0600 files; an older home is tightened, saying so)."""
    tightened = settings.private_home(home)
    if tightened:
        shown = "; ".join(tightened[:5]) + (f"; and {len(tightened) - 5} more" if len(tightened) > 5 else "")
        print(f"[dev] {home} was readable by other accounts: tightened {len(tightened)} path(s) to the owner only "
              f"({shown})", flush=True)
    for sub in ("mongo", "mlflow", "mlflow/artifacts", "dagster"):  # each level: `parents` would not apply the mode
        (home / sub).mkdir(exist_ok=True, mode=0o700)
    instance_yaml = home / "dagster" / "dagster.yaml"
    if not instance_yaml.exists():
        with os.fdopen(os.open(instance_yaml, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as file:
            file.write(DAGSTER_INSTANCE_YAML)
    elif "run_retries" not in (yaml.safe_load(instance_yaml.read_text()) or {}):
        # A home from before run retries: add them, keep everything the user wrote (the file is theirs: the daemon's
        # intervals of DAEMON_YAML reach only a new home's file).
        with instance_yaml.open("a") as file:
            file.write("\n" + RUN_RETRIES_YAML)


def embedded_mongo_port(uri: str) -> int | None:
    """The port of the embedded server the dev stack starts: one loopback node, else None (a server elsewhere)."""
    nodes = uri_parser.parse_uri(uri)["nodelist"]
    return nodes[0][1] if len(nodes) == 1 and nodes[0][0] in LOOPBACK else None


def secure_embedded_mongo(env: dict[str, str], home: Path, *, log: Callable[[str], None] = print) -> dict[str, str]:
    """Users for the embedded server, before the stack starts; returns each process's MongoDB variables.

    On the first start the server gets its administrator; on every start `provision` brings
    each project's role and user (and the endpoint's) up to date with the project files. Both
    happen with the server started briefly without `--auth` on a free port (it has no
    localhost exception); the stack then runs it with `--auth`. Passwords stay in
    `$MINING_HOME/mongo_credentials.json` (0600).

    A MINING_MONGO_URI that carries a user is the operator's own arrangement: left alone.
    """
    if uri_parser.parse_uri(env["MINING_MONGO_URI"])["username"]:
        return {}
    logins = credentials.load(home)
    projects = []
    for name in project_names(Path(env["MINING_PROJECTS_DIR"])):
        try:
            projects.append(load_project(Path(env["MINING_PROJECTS_DIR"]) / name, platform=env["MINING_MONGO_DB"]))
        except ProjectConfigError as exc:
            log(f"[dev] project {name}: skipped, it gets no MongoDB privileges this time: {exc}")
    storage = home / "mongo"
    with embedded_mongo.running_server(storage, auth=False) as open_uri, \
            MongoClient(open_uri, serverSelectionTimeoutMS=30_000) as client:
        if credentials.ADMIN not in logins:
            if client.admin.command("usersInfo", {"user": provision.ADMIN_USER, "db": "admin"})["users"]:
                raise RuntimeError(f"{storage} has the user {provision.ADMIN_USER} but {credentials.credentials_path(home)} "
                                   "does not hold its password: restore that file, or remove the storage to start over")
            logins[credentials.ADMIN] = provision.new_admin_login()
            provision.create_admin(client, logins[credentials.ADMIN])
            credentials.save(logins, home)
        done = provision.provision(client, platform=env["MINING_MONGO_DB"], projects=projects, logins=logins)
    credentials.save(done.logins, home)
    for line in done.lines:
        log(f"[dev] mongo users: {line}")
    base = env["MINING_MONGO_URI"]
    uris = {"MINING_MONGO_URI": credentials.with_login(base, done.logins[credentials.ENDPOINT])}
    for name, login in done.logins["projects"].items():
        if name in {p.name for p in projects}:
            uris[f"MINING_MONGO_URI_{name.upper()}"] = credentials.with_login(base, login)
    return uris
