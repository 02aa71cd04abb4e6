"""`mining-platform provision`: least-privilege MongoDB roles and users for the platform, enforced by the server.

- `mining_project_<p>` (a role of the same name): read the source collections `project.yaml`
  names (nothing else of their databases); read and write the namespace `<MINING_MONGO_DB>_<p>`;
  read what the endpoint writes for it (`<namespace>-endpoint`: the prediction log, the
  replicas' heartbeats); with a `demo:` block, also write its demo database `<namespace>-demo`
  (the generated events and the claim `demo_collections`, nothing else).
- `mining_endpoint`: read every project's namespace (commit markers, features, serving records,
  with a change stream on `serving_desired`); write only each project's endpoint database
  (`prediction_log`, `serving_replicas`), which holds nothing that decides what is served.

Every grant is a database-level grant or a collection of a database the grantee may hold
whole, so the embedded server (which applies a collection's privilege to its whole database)
enforces the same boundary as MongoDB. A project whose file reaches past its namespace and
declared sources (`boundary_problems`) gets no privileges: it is skipped, with its reason,
and the others are provisioned.
- `mining_admin`: the platform's own setup (this command, imports); created when the embedded
  server first starts; in production, the platform team's administrator.

Roles are defined in the `admin` database and rewritten on every run, so a project's
new source or a removed demo block takes effect by running the command again.
Passwords: a user keeps the one stored for it; a new user, or any user with `rotate`,
gets a fresh random one. The caller stores the returned logins.
"""

import secrets
from dataclasses import dataclass, field

from pymongo import MongoClient

from mining_platform.access.credentials import ADMIN, ENDPOINT, Login
from mining_platform.spec.names import (
    PREDICTION_LOG,
    SERVING_DESIRED,
    SERVING_REPLICAS,
    demo_database,
    endpoint_database,
    project_database,
)
from mining_platform.spec.project import ProjectConfig, boundary_problems

ROLE_DB = "admin"
SOURCE_READ = ["find", "listIndexes", "collStats", "killCursors"]
DEMO_WRITE = ["find", "insert", "update", "remove", "createCollection", "createIndex", "listIndexes", "collStats",
              "killCursors"]
ENDPOINT_WRITE = ["find", "insert", "update", "remove", "createCollection", "createIndex", "listIndexes",
                  "killCursors"]
ADMIN_USER = "mining_admin"
ENDPOINT_USER = "mining_endpoint"


def project_user(project: str) -> str:
    return f"mining_project_{project}"


@dataclass
class Provisioned:
    logins: dict
    lines: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # project -> why it got no privileges


def project_privileges(project: ProjectConfig, platform: str) -> list[dict]:
    """Read on each source collection; with a demo block, write on the project's demo database (its events and
    claims, nothing else), a database-level grant the embedded server enforces as MongoDB does."""
    privileges = []
    demo_source = project.sources[project.demo.source] if project.demo else None
    for source in project.sources.values():
        if source is not demo_source:
            privileges.append({"resource": {"db": source.database_name(platform), "collection": source.collection},
                               "actions": SOURCE_READ})
    if demo_source is not None:
        privileges.append({"resource": {"db": demo_database(platform, project.name), "collection": ""},
                           "actions": DEMO_WRITE})
    return privileges


def project_role(project: ProjectConfig, platform: str) -> dict:
    return {
        "privileges": project_privileges(project, platform),
        "roles": [{"role": "readWrite", "db": project_database(platform, project.name)},
                  {"role": "read", "db": endpoint_database(platform, project.name)}],
    }


def endpoint_role(projects: list[ProjectConfig], platform: str) -> dict:
    privileges = []
    for project in projects:
        namespace = project_database(platform, project.name)
        # Read only: features, markers and the serving records it follows (a change stream); its cursors it closes.
        privileges.append({"resource": {"db": namespace, "collection": ""}, "actions": ["find", "killCursors"]})
        privileges.append({"resource": {"db": namespace, "collection": SERVING_DESIRED},
                           "actions": ["find", "changeStream", "killCursors"]})
        # Written: its sampled predictions and its replicas' heartbeats, in a database holding nothing else.
        privileges.append({"resource": {"db": endpoint_database(platform, project.name), "collection": ""},
                           "actions": ENDPOINT_WRITE})
    return {"privileges": privileges, "roles": []}


def _put_role(admin_db, name: str, role: dict) -> str:
    exists = admin_db.command("rolesInfo", {"role": name, "db": ROLE_DB})["roles"]
    command = "updateRole" if exists else "createRole"
    admin_db.command(command, name, privileges=role["privileges"], roles=role["roles"])
    return "updated" if exists else "created"


def _revoke_role(admin_db, name: str) -> str:
    """Empty the role of a project that is skipped now: what an earlier run granted does not outlive its file."""
    if not admin_db.command("rolesInfo", {"role": name, "db": ROLE_DB})["roles"]:
        return ""
    admin_db.command("updateRole", name, privileges=[], roles=[])
    return " (its earlier role now grants nothing)"


def _put_user(admin_db, name: str, role: str, stored: Login | None, *, rotate: bool) -> tuple[Login, str]:
    exists = admin_db.command("usersInfo", {"user": name, "db": ROLE_DB})["users"]
    keep = stored is not None and stored.user == name and not rotate
    login = stored if keep else Login(name, secrets.token_urlsafe(24))
    roles = [{"role": role, "db": ROLE_DB}]
    if not exists:
        admin_db.command("createUser", name, pwd=login.password, roles=roles)
        return login, "created"
    if keep:
        admin_db.command("updateUser", name, roles=roles)
        return login, "roles updated"
    admin_db.command("updateUser", name, pwd=login.password, roles=roles)
    return login, "password set"


def provision(client: MongoClient, *, platform: str, projects: list[ProjectConfig], logins: dict,
              rotate: bool = False) -> Provisioned:
    """Create or update the platform's roles and users; returns every login (the stored ones kept)."""
    admin_db = client[ROLE_DB]
    result = Provisioned(logins={key: value for key, value in logins.items() if key != "projects"})
    result.logins["projects"] = dict(logins.get("projects", {}))
    for project in projects:
        name = project_user(project.name)
        problems = boundary_problems(project, platform)
        if problems:
            result.skipped[project.name] = "; ".join(problems)
            revoked = _revoke_role(admin_db, name)
            result.lines.append(f"project {project.name}: skipped, nothing granted{revoked}: {'; '.join(problems)}")
            continue
        role_state = _put_role(admin_db, name, project_role(project, platform))
        login, user_state = _put_user(admin_db, name, name, result.logins["projects"].get(project.name), rotate=rotate)
        result.logins["projects"][project.name] = login
        result.lines.append(f"project {project.name}: role {role_state}, user {name} {user_state}; reads "
                            f"{', '.join(f'{s.database_name(platform)}.{s.collection}' for s in project.sources.values())}"
                            f", writes {project_database(platform, project.name)}"
                            + (f" and its demo database {demo_database(platform, project.name)}" if project.demo else ""))
    served = [p for p in projects if p.name not in result.skipped]
    role_state = _put_role(admin_db, ENDPOINT_USER, endpoint_role(served, platform))
    login, user_state = _put_user(admin_db, ENDPOINT_USER, ENDPOINT_USER, result.logins.get(ENDPOINT), rotate=rotate)
    result.logins[ENDPOINT] = login
    result.lines.append(f"endpoint: role {role_state}, user {ENDPOINT_USER} {user_state}; reads the namespaces of "
                        f"{', '.join(p.name for p in served) or 'no project'} and follows their {SERVING_DESIRED}; "
                        f"writes only their endpoint databases ({PREDICTION_LOG}, {SERVING_REPLICAS})")
    return result


def create_admin(client: MongoClient, login: Login) -> None:
    """The platform's administrator (root) on a server without users yet (the embedded server's first start)."""
    client[ROLE_DB].command("createUser", login.user, pwd=login.password, roles=[{"role": "root", "db": ROLE_DB}])


def new_admin_login() -> Login:
    return Login(ADMIN_USER, secrets.token_urlsafe(24))


__all__ = ["ADMIN", "ADMIN_USER", "ENDPOINT_USER", "Provisioned", "create_admin", "new_admin_login", "project_user",
           "provision"]
