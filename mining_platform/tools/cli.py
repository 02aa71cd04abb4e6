"""`mining-platform`: the platform's command line."""

import argparse
import sys
from urllib.parse import urlsplit

from mining_platform import settings


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


def _validate(args: argparse.Namespace) -> int:
    from pathlib import Path

    from pymongo import MongoClient
    from pymongo.errors import PyMongoError

    from mining_platform.access.credentials import connection_string, redacted
    from mining_platform.tools.validation import ValidationFailed, validate

    registry, client = None, None
    if not args.offline:
        uri = connection_string()
        client = MongoClient(uri, serverSelectionTimeoutMS=args.mongo_timeout * 1000, tz_aware=True)
        try:
            client.admin.command("ping")
        except PyMongoError as exc:
            client.close()
            print(f"mining-platform validate: cannot reach MongoDB at {redacted(uri)} to compare versions with "
                  f"feature_pipelines ({type(exc).__name__}); start `make dev`, set MINING_MONGO_URI, "
                  "or pass --offline to skip that check", file=sys.stderr)
            return 2
        registry = client[settings.setting("MINING_MONGO_DB")]
    try:
        checked = validate([Path(p) for p in args.paths], registry=registry)
    except ValidationFailed as exc:
        print(f"mining-platform validate: {exc}", file=sys.stderr)
        return 1
    finally:
        if client is not None:
            client.close()
    versions = "not compared with the registry (--offline)" if args.offline else "versions agree with feature_pipelines"
    print(f"{checked} files valid; {versions}")
    if not args.offline:
        _print_impact([Path(p) for p in args.paths])
    return 0


def _print_impact(paths) -> None:
    """validate's impact section: for each new version, what it touches (`mining-platform impact` for all)."""
    import httpx

    from mining_platform.registry.client import RegistryError
    from mining_platform.registry.client import client as mlflow_client
    from mining_platform.tools.impact import assess, definitions_under

    client, registry = _mongo_database(5.0)
    tracking = settings.setting("MLFLOW_TRACKING_URI")
    mlflow = mlflow_client(tracking)
    if tracking.startswith("http"):
        try:
            httpx.get(f"{tracking.rstrip('/')}/health", timeout=2.0).raise_for_status()
        except httpx.HTTPError:
            print(f"impact: MLflow at {tracking} does not answer, so the models are not looked up")
            mlflow = None
    try:
        for path in paths:
            for file, project, definition in definitions_under(path):
                try:
                    impact = assess(file, project, definition, registry=registry, client=mlflow,
                                    endpoint_url=settings.setting("MINING_ENDPOINT_URL"))
                except RegistryError as exc:
                    print(f"impact of {file}: MLflow did not answer ({exc.message}); `mining-platform impact` "
                          "retries")
                    continue
                if not impact.change.startswith("unchanged"):
                    print("impact:\n" + "\n".join(impact.lines()))
    finally:
        client.close()


def _mongo_database(timeout: float):
    """(client, database) of MINING_MONGO_URI / MINING_MONGO_DB, or raise OSError saying it is unreachable."""
    from pymongo import MongoClient, uri_parser
    from pymongo.errors import OperationFailure, PyMongoError

    from mining_platform.access.credentials import connection_string, redacted

    uri = connection_string()
    client = MongoClient(uri, serverSelectionTimeoutMS=timeout * 1000, tz_aware=True)
    try:
        client.admin.command("ping")
        if uri_parser.parse_uri(uri)["username"]:
            client.admin.command("connectionStatus")  # the ping needs no login: this one authenticates
    except OperationFailure as exc:
        client.close()
        if exc.code == 18:  # AuthenticationFailed
            raise OSError(f"MongoDB at {redacted(uri)}: authentication failed for user "
                          f"{uri_parser.parse_uri(uri)['username']!r} (its password or authSource is wrong; "
                          "`mining-platform provision` sets the stored ones)") from None
        raise OSError(f"MongoDB at {redacted(uri)} refused the connection: {exc}") from None
    except PyMongoError as exc:
        client.close()
        raise OSError(f"cannot reach MongoDB at {redacted(uri)} ({type(exc).__name__}); start `make dev` or set "
                      "MINING_MONGO_URI") from None
    return client, client[settings.setting("MINING_MONGO_DB")]


def _impact(args: argparse.Namespace) -> int:
    from pathlib import Path

    from mining_platform.registry.client import client as mlflow_client
    from mining_platform.spec.definition import DefinitionError
    from mining_platform.tools.impact import assess, definitions_under
    from mining_platform.tools.validation import ValidationFailed

    registry, client, mlflow = None, None, None
    if not args.offline:
        client, registry = _mongo_database(args.mongo_timeout)
        mlflow = mlflow_client(settings.setting("MLFLOW_TRACKING_URI"))
    try:
        for path in args.paths:
            for file, project, definition in definitions_under(Path(path)):
                impact = assess(file, project, definition, registry=registry, client=mlflow,
                                endpoint_url=None if args.offline else settings.setting("MINING_ENDPOINT_URL"))
                print("\n".join(impact.lines()))
    except (DefinitionError, ValidationFailed) as exc:
        print(f"mining-platform impact: {exc}", file=sys.stderr)
        return 1
    finally:
        if client is not None:
            client.close()
    return 0


def _provision(args: argparse.Namespace) -> int:
    from pymongo.errors import OperationFailure

    from mining_platform.access import credentials
    from mining_platform.access.provision import provision
    from mining_platform.spec.project import ProjectConfigError, load_project, project_names

    projects, skipped = [], []
    for name in project_names(settings.projects_dir()):
        try:
            projects.append(load_project(settings.projects_dir() / name))
        except ProjectConfigError as exc:  # skipped with its reason; the others are provisioned
            print(f"mining-platform provision: project {name} skipped, nothing granted: {exc}", file=sys.stderr)
            skipped.append(name)
    client, _ = _mongo_database(args.mongo_timeout)
    try:
        done = provision(client, platform=settings.setting("MINING_MONGO_DB"), projects=projects,
                         logins=credentials.load(), rotate=args.rotate)
    except OperationFailure as exc:
        print(f"mining-platform provision: MongoDB refused ({exc.details.get('errmsg', exc) if exc.details else exc}); "
              "MINING_MONGO_URI must name a user allowed to manage roles and users (userAdmin)", file=sys.stderr)
        return 1
    finally:
        client.close()
    path = credentials.save(done.logins)
    for line in done.lines:
        print(line)
    print(f"passwords are in {path} (readable by you only); `mining-platform mongo-uri --as <who>` prints a "
          "connection string")
    skipped += list(done.skipped)
    if skipped:
        print(f"mining-platform provision: skipped {', '.join(skipped)} (see above): fix the project files and run "
              "it again", file=sys.stderr)
        return 1
    return 0


def _mongo_uri(args: argparse.Namespace) -> int:
    from mining_platform.access import credentials

    base = settings.setting("MINING_MONGO_URI")
    try:
        login = credentials.login_for(args.who, credentials.load())
    except credentials.CredentialsMissing as exc:
        print(f"mining-platform mongo-uri: {exc}", file=sys.stderr)
        return 1
    print(credentials.with_login(base, login))
    return 0


def _import(args: argparse.Namespace) -> int:
    import datetime as dt
    import re
    from pathlib import Path

    from mining_platform.sources.importer import ImportFailed, import_file
    from mining_platform.sources.observe import historical_end
    from mining_platform.spec.project import PROJECT_FILE, PROJECT_NAME, load_project

    if not re.fullmatch(PROJECT_NAME, args.project):
        print(f"mining-platform import: --project {args.project!r}: a project name (a folder of "
              f"{settings.projects_dir()}), not a path", file=sys.stderr)
        return 1
    try:
        earliest = dt.datetime.combine(dt.date.fromisoformat(args.earliest), dt.time(), dt.timezone.utc)
    except ValueError:
        print(f"mining-platform import: --earliest {args.earliest!r}: a date, YYYY-MM-DD", file=sys.stderr)
        return 1
    report_path = Path(args.drop_bad_rows) if args.drop_bad_rows else None
    if report_path is not None and (report_path.resolve() == Path(args.file).resolve() or report_path.is_dir()):
        print(f"mining-platform import: --drop-bad-rows {report_path}: a new file for the report, not the input "
              "or a folder", file=sys.stderr)
        return 1
    project_dir = settings.projects_dir() / args.project
    project = load_project(project_dir)
    client, db = _mongo_database(args.mongo_timeout)
    try:
        report = import_file(db, project, args.source, Path(args.file), timestamp_format=args.timestamp_format,
                             progress=lambda line: print(line, file=sys.stderr, flush=True),
                             earliest=earliest, drop_bad_rows=report_path is not None,
                             replace_days=args.replace_days)
    except ImportFailed as exc:
        print(f"mining-platform import: {exc}", file=sys.stderr)
        return 1
    finally:
        client.close()
    replaced = (f"; days {report.first_day} to {report.last_day} replaced, {report.removed} rows the file no longer "
                "has removed" if args.replace_days else "")
    print(f"imported {report.rows} rows of {args.file} into {report.target} (source {args.source} of {args.project}): "
          f"{report.inserted} new, {report.already_there} already there{replaced}; events from {report.first_day} to "
          f"{report.last_day} ({report.seconds:.1f} s)")
    if report_path is not None:
        _write_dropped(report_path, report.dropped)
        print(f"{len(report.dropped)} rows dropped (--drop-bad-rows), each with its line and reason in {report_path}")
    for note in report.notes:
        print(f"note: {note}")
    if report.last_day is None:
        return 0
    last = dt.datetime.combine(report.last_day, dt.time.max, dt.timezone.utc)
    end = historical_end(last, project.sources[args.source].lateness_days, dt.date.today())
    if project.end_date is None and end is not None:
        line = f'end_date: "{end.isoformat()}"'
        if args.set_end_date:
            _append_line(project_dir / PROJECT_FILE, f"{line}        # set by `mining-platform import` (where "
                         f"{Path(args.file).name} ends); remove it to follow new days")
            print(f"set {line} in {project_dir / PROJECT_FILE}: the events end on {report.last_day}, so the daily "
                  "partitions stop there instead of running to today. Reload the code location to see it.")
        else:
            print(f"the events end on {report.last_day}, {(dt.date.today() - report.last_day).days} days ago: for a "
                  f"historical file add `{line}` to {project_dir / PROJECT_FILE} (or import with --set-end-date), "
                  "or its daily partitions run to today, empty after that day")
    elif project.end_date is not None and report.last_day > project.end_date:
        print(f"the events run to {report.last_day}, after end_date {project.end_date}: the days after it are no "
              f"partitions; raise end_date in {project_dir / PROJECT_FILE} to compute them")
    return 0


def _write_dropped(path, dropped: list[tuple[str, str]]) -> None:
    """The report of `import --drop-bad-rows`: one CSV row per dropped line (`where,reason`), written whole."""
    import csv
    import os

    partial = path.with_name(f".{path.name}.partial")
    with open(partial, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["where", "reason"])  # "line 12" (CSV, JSON lines) or "row 12" (Parquet)
        writer.writerows(dropped)
    os.replace(partial, path)


def _append_line(path, line: str) -> None:
    """Add a top-level key to a project file, leaving it as it was when the result does not load."""
    from mining_platform.spec.project import load_project

    before = path.read_text()
    path.write_text(before.rstrip("\n") + "\n" + line + "\n")
    try:
        load_project(path.parent)
    except ValueError:
        path.write_text(before)
        raise


def _new(args: argparse.Namespace) -> int:
    import datetime as dt
    from pathlib import Path

    from mining_platform.sources.observe import historical_end
    from mining_platform.tools.scaffold import ScaffoldFailed, scaffold

    start = dt.date.fromisoformat(args.start_date) if args.start_date else None
    end = None if args.end_date in (None, "none") else dt.date.fromisoformat(args.end_date)
    said = None
    if start is None:
        from pymongo import ASCENDING, DESCENDING

        client, db = _mongo_database(args.mongo_timeout)
        try:
            events = client[args.database][args.source] if args.database else db[args.source]
            first, newest = (events.find_one({args.timestamp: {"$type": "date"}}, {args.timestamp: 1},
                                             sort=[(args.timestamp, order)]) for order in (ASCENDING, DESCENDING))
        finally:
            client.close()
        if first is None:
            print(f"mining-platform new: {args.source} has no document with a date in {args.timestamp!r}; pass "
                  "--start-date (the first day to build features for), or import the events first", file=sys.stderr)
            return 1
        start = first[args.timestamp].date()
        newest_at = newest[args.timestamp].replace(tzinfo=dt.timezone.utc)
        if args.end_date is None:
            end = historical_end(newest_at, 0, dt.date.today())
            if end is not None:
                said = (f"end_date {end}: the newest event is from {newest_at.date()}, "
                        f"{(dt.date.today() - newest_at.date()).days} days ago, so the partitions stop at its last "
                        "complete day instead of running to today (pass --end-date none to follow new days)")
    workspace = Path(args.workspace)
    try:
        made = scaffold(settings.projects_dir(), args.name, collection=args.source, entity=args.entity,
                        timestamp=args.timestamp, start_date=start, task=args.task, database=args.database,
                        workspace=workspace, end_date=end)
    except ScaffoldFailed as exc:
        print(f"mining-platform new: {exc}", file=sys.stderr)
        return 1
    for path in made.files:
        print(f"wrote {path}")
    if said:
        print(said)
    print(f"added code location {args.name} to {made.workspace}" if made.workspace else
          f"no {workspace}: add the code location yourself (-m sensors.definitions -a {args.name})")
    print(f"next: mining-platform validate {made.project_dir}, then `make dev` and materialise {args.name}/features")
    return 0


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
    check.set_defaults(run=_validate)

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
    load.set_defaults(run=_import)

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
    new.set_defaults(run=_new)

    touched = commands.add_parser(
        "impact", help="what changed feature or label definitions touch: downstream assets, models trained on them, "
        "the champion, whether a version bump is needed")
    touched.add_argument("paths", nargs="+", metavar="PATH", help="as for validate")
    touched.add_argument("--offline", action="store_true", help="only the downstream assets (no MongoDB, no MLflow)")
    touched.add_argument("--mongo-timeout", type=float, default=5.0, help="seconds to wait for MongoDB (default 5)")
    touched.set_defaults(run=_impact)

    users = commands.add_parser(
        "provision", help="create or update the MongoDB roles and users: one per project, the endpoint's")
    users.add_argument("--rotate", action="store_true", help="give every user a new password")
    users.add_argument("--mongo-timeout", type=float, default=5.0, help="seconds to wait for MongoDB (default 5)")
    users.set_defaults(run=_provision)

    show = commands.add_parser("mongo-uri", help="print a connection string with a platform user's credentials")
    show.add_argument("--as", dest="who", default="admin", metavar="WHO",
                      help="admin (default), endpoint, or a project's name")
    show.set_defaults(run=_mongo_uri)

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
