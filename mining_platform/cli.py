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
    from mining_platform.devstack import run_dev_stack

    return run_dev_stack(dagster_port=args.dagster_port, ready_timeout=args.ready_timeout)


def _validate(args: argparse.Namespace) -> int:
    from pathlib import Path

    from pymongo import MongoClient
    from pymongo.errors import PyMongoError

    from mining_platform.validation import ValidationFailed, validate

    registry, client = None, None
    if not args.offline:
        uri = settings.setting("MINING_MONGO_URI")
        client = MongoClient(uri, serverSelectionTimeoutMS=args.mongo_timeout * 1000, tz_aware=True)
        try:
            client.admin.command("ping")
        except PyMongoError as exc:
            client.close()
            print(f"mining-platform validate: cannot reach MongoDB at {uri} to compare versions with "
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
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mining-platform", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    dev = commands.add_parser("dev", help="run the dev stack: MongoDB, MLflow, the endpoint and Dagster")
    dev.add_argument("--dagster-port", type=int, default=3000, help="Dagster webserver port (default 3000)")
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

    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except (ValueError, OSError) as exc:
        print(f"mining-platform {args.command}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
