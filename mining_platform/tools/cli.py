"""`mining-platform`: the platform's command line."""

import argparse
import sys
from urllib.parse import urlsplit

from mining_platform import settings
from mining_platform.tools.cli_access import mongo_uri_command, provision_command
from mining_platform.tools.cli_checks import impact_command, validate_command
from mining_platform.tools.cli_data import import_command, new_command


def _serve(args: argparse.Namespace) -> int:
    import os

    import uvicorn

    from mining_platform.serving.app import create_app, serving_config_from_environment

    # Fail a reload in seconds when MLflow is down, instead of MLflow's minutes of retries.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    config = serving_config_from_environment()
    url = urlsplit(settings.setting("MINING_ENDPOINT_URL"))
    uvicorn.run(
        create_app(config),
        host=args.host or url.hostname or "127.0.0.1",
        port=args.port or url.port or 8080,
        log_level="info",
        # Keep-alive long enough for pooled clients; the access log costs more than a prediction.
        timeout_keep_alive=30,
        access_log=args.access_log,
    )
    return 0


def _dev(args: argparse.Namespace) -> int:
    from mining_platform.tools.devstack import run_dev_stack

    port = args.dagster_port or settings.int_setting("MINING_DAGSTER_PORT", minimum=1)
    return run_dev_stack(dagster_port=port, ready_timeout=args.ready_timeout)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mining-platform", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    dev = commands.add_parser("dev", help="run the dev stack: MongoDB, MLflow, the endpoint and Dagster")
    dev.add_argument("--dagster-port", type=int, help="Dagster webserver port (default MINING_DAGSTER_PORT, 3000)")
    dev.add_argument(
        "--ready-timeout", type=float, default=300.0, help="seconds each service may take to become ready"
    )
    dev.set_defaults(run=_dev)

    serve = commands.add_parser("serve", help="run the scoring endpoint alone")
    serve.add_argument("--host", help="bind address (default: host of MINING_ENDPOINT_URL)")
    serve.add_argument("--port", type=int, help="port (default: port of MINING_ENDPOINT_URL)")
    serve.add_argument("--access-log", action="store_true", help="log every request (off: it costs more than a prediction)")
    serve.set_defaults(run=_serve)

    check = commands.add_parser(
        "validate",
        help="check project and feature files; exit 1 naming the first file with problems (all of them)",
    )
    check.add_argument("paths", nargs="+", metavar="PATH",
                       help="projects folder, project folder, features folder, project.yaml or a feature file")
    check.add_argument("--offline", action="store_true",
                       help="skip comparing (name, version) with feature_pipelines in MongoDB")
    check.add_argument("--mongo-timeout", type=float, default=5.0, help="seconds to wait for MongoDB (default 5)")
    check.set_defaults(run=validate_command)

    load = commands.add_parser(
        "import", help="load a CSV, Parquet or JSON-lines file into a project's source (idempotent; all or nothing)")
    load.add_argument("file", metavar="FILE", help="a .csv, .parquet or .jsonl file with one event per row")
    load.add_argument("--project", required=True, help="the project (a folder under MINING_PROJECTS_DIR)")
    load.add_argument("--source", required=True, help="the key of one of the project's sources")
    load.add_argument("--timestamp-format", help="strptime format of a text event time (default: ISO 8601), "
                      "e.g. %%Y%%m%%d or '%%d/%%m/%%Y %%H:%%M'")
    load.add_argument("--earliest", default="1970-01-01", metavar="YYYY-MM-DD",
                      help="refuse events before this day (default 1970-01-01); the latest accepted is now plus "
                      "MINING_FUTURE_TOLERANCE_MINUTES")
    load.add_argument("--set-end-date", action="store_true",
                      help="for a historical file (its events end over a week ago) with no end_date in project.yaml: "
                      "set end_date to its last complete day (default: print the proposal)")
    load.add_argument("--replace-days", action="store_true",
                      help="a corrected export: replace every event of the days the file covers (its first to its "
                      "last UTC day), removing rows it no longer has, in one publish (default: add new rows only)")
    load.add_argument("--drop-bad-rows", metavar="REPORT.csv",
                      help="leave out rows that fail a row check (no entity or time, an unparseable or out-of-range "
                      "value) and write each dropped line and why to REPORT.csv (default: refuse the file)")
    load.add_argument("--mongo-timeout", type=float, default=5.0, help="seconds to wait for MongoDB (default 5)")
    load.set_defaults(run=import_command)

    new = commands.add_parser("new", help="scaffold a project over an existing collection of events")
    new.add_argument("name", metavar="NAME", help="project name (lowercase letters, digits, _)")
    new.add_argument("--source", required=True, metavar="COLLECTION", help="the collection of events")
    new.add_argument("--entity", required=True, metavar="FIELD", help="the field identifying the entity (user, customer…)")
    new.add_argument("--timestamp", required=True, metavar="FIELD", help="the event-time field (a BSON date)")
    new.add_argument("--database", help="the source's database, when not MINING_MONGO_DB")
    new.add_argument("--task", choices=["binary", "regression"], default="binary", help="the starter label's task")
    new.add_argument("--start-date", help="first daily partition, YYYY-MM-DD (default: the source's first event day)")
    new.add_argument("--end-date", help="last daily partition, YYYY-MM-DD, or none (default without --start-date: "
                     "the source's last complete day when its newest event is over a week old, else none)")
    new.add_argument("--workspace", default="workspace.yaml", help="workspace file to add the code location to")
    new.add_argument("--mongo-timeout", type=float, default=5.0, help="seconds to wait for MongoDB (default 5)")
    new.set_defaults(run=new_command)

    touched = commands.add_parser(
        "impact", help="what changed feature or label definitions touch: downstream assets, models trained on them, "
        "the champion, whether a version bump is needed")
    touched.add_argument("paths", nargs="+", metavar="PATH", help="as for validate")
    touched.add_argument("--offline", action="store_true", help="only the downstream assets (no MongoDB, no MLflow)")
    touched.add_argument("--mongo-timeout", type=float, default=5.0, help="seconds to wait for MongoDB (default 5)")
    touched.set_defaults(run=impact_command)

    users = commands.add_parser(
        "provision", help="create or update the MongoDB roles and users: one per project, the endpoint's")
    users.add_argument("--rotate", action="store_true", help="give every user a new password")
    users.add_argument("--mongo-timeout", type=float, default=5.0, help="seconds to wait for MongoDB (default 5)")
    users.set_defaults(run=provision_command)

    show = commands.add_parser("mongo-uri", help="print a connection string with a platform user's credentials")
    show.add_argument("--as", dest="who", default="admin", metavar="WHO",
                      help="admin (default), endpoint, or a project's name")
    show.set_defaults(run=mongo_uri_command)

    args = parser.parse_args(argv)
    from pymongo.errors import OperationFailure

    try:
        return args.run(args)
    except (ValueError, OSError) as exc:
        print(f"mining-platform {args.command}: {exc}", file=sys.stderr)
        return 2
    except OperationFailure as exc:
        if exc.code not in (13, 18):  # Unauthorized, AuthenticationFailed
            raise
        print(f"mining-platform {args.command}: MongoDB refused: {exc.details.get('errmsg') if exc.details else exc}. "
              "Set MINING_MONGO_URI with a user allowed to do this (the dev stack's administrator: "
              "`mining-platform mongo-uri`), or start `make dev` once so it creates its users", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

