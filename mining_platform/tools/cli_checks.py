"""`mining-platform validate` (with its impact section) and `impact`."""

import argparse
import sys

from mining_platform import settings
from mining_platform.tools.cli_access import mongo_database


def validate_command(args: argparse.Namespace) -> int:
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
        print_impact([Path(p) for p in args.paths])
    return 0


def print_impact(paths) -> None:
    """validate's impact section: for each new version, what it touches (`mining-platform impact` for all)."""
    import httpx

    from mining_platform.registry.client import RegistryError
    from mining_platform.registry.client import client as mlflow_client
    from mining_platform.tools.impact import assess, definitions_under

    client, registry = mongo_database(5.0)
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


def impact_command(args: argparse.Namespace) -> int:
    from pathlib import Path

    from mining_platform.registry.client import client as mlflow_client
    from mining_platform.spec.definition import DefinitionError
    from mining_platform.tools.impact import assess, definitions_under
    from mining_platform.tools.validation import ValidationFailed

    registry, client, mlflow = None, None, None
    if not args.offline:
        client, registry = mongo_database(args.mongo_timeout)
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
