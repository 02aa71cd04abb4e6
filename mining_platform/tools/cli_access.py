"""`mining-platform provision` and `mongo-uri`, and the MongoDB connection every command that needs one opens."""

import argparse
import sys

from mining_platform import settings


def mongo_database(timeout: float):
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


def provision_command(args: argparse.Namespace) -> int:
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
    client, _ = mongo_database(args.mongo_timeout)
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


def mongo_uri_command(args: argparse.Namespace) -> int:
    from mining_platform.access import credentials

    base = settings.setting("MINING_MONGO_URI")
    try:
        login = credentials.login_for(args.who, credentials.load())
    except credentials.CredentialsMissing as exc:
        print(f"mining-platform mongo-uri: {exc}", file=sys.stderr)
        return 1
    print(credentials.with_login(base, login))
    return 0
