"""The dev stack's MongoDB users and passwords, and connection strings that carry them.

Production hands each process its connection string (with its user) through its own
secret; the dev stack keeps the passwords `provision` generated in one private file,
`$MINING_HOME/mongo_credentials.json` (mode 0600), and builds each process's string
from it. Passwords are never logged: `redacted` is what messages show.
"""

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, quote_plus, urlencode

from mining_platform import settings

CREDENTIALS_FILE = "mongo_credentials.json"
ADMIN = "admin"
ENDPOINT = "endpoint"
AUTH_SOURCE = "admin"  # where the platform's users are defined


class CredentialsMissing(LookupError):
    """No stored credentials for the user asked for."""


@dataclass(frozen=True)
class Login:
    user: str
    password: str


def credentials_path(home: Path | None = None) -> Path:
    return (home or settings.mining_home()) / CREDENTIALS_FILE


def load(home: Path | None = None) -> dict:
    """{"admin": Login?, "endpoint": Login?, "projects": {name: Login}} from the file (empty when none)."""
    path = credentials_path(home)
    if not path.exists():
        return {"projects": {}}
    raw = json.loads(path.read_text())
    logins = {key: Login(**raw[key]) for key in (ADMIN, ENDPOINT) if key in raw}
    logins["projects"] = {name: Login(**value) for name, value in raw.get("projects", {}).items()}
    return logins


def save(logins: dict, home: Path | None = None) -> Path:
    """Write the file readable by its owner only (written to a private temp file, then renamed into place)."""
    path = credentials_path(home)
    path.parent.mkdir(parents=True, exist_ok=True)
    raw = {key: vars(logins[key]) for key in (ADMIN, ENDPOINT) if key in logins}
    raw["projects"] = {name: vars(login) for name, login in sorted(logins.get("projects", {}).items())}
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as file:
        json.dump(raw, file, indent=2)
    os.replace(tmp, path)
    return path


def login_for(who: str, logins: dict) -> Login:
    """`admin`, `endpoint` or a project's name."""
    found = logins.get(who) if who in (ADMIN, ENDPOINT) else logins.get("projects", {}).get(who)
    if found is None:
        known = [k for k in (ADMIN, ENDPOINT) if k in logins] + sorted(logins.get("projects", {}))
        raise CredentialsMissing(
            f"no MongoDB credentials for {who!r} in {credentials_path()} (known: {', '.join(known) or 'none'}); "
            "run `mining-platform provision` (the dev stack does at start)")
    return found


_USERINFO = re.compile(r"^(?P<scheme>mongodb(?:\+srv)?://)(?:[^@/]*@)?(?P<rest>.*)$")


def with_login(uri: str, login: Login | None) -> str:
    """`uri` with its user and password replaced by `login` (authSource=admin), or removed when None."""
    match = _USERINFO.match(uri)
    if match is None:
        raise ValueError("a MongoDB connection string starts with mongodb:// or mongodb+srv://")
    rest = match["rest"]
    if login is None:
        return match["scheme"] + rest
    hosts, _, tail = rest.partition("/")
    path, _, query = tail.partition("?")
    options = [(k, v) for k, v in parse_qsl(query, keep_blank_values=True) if k.lower() != "authsource"]
    options.append(("authSource", AUTH_SOURCE))
    userinfo = f"{quote_plus(login.user)}:{quote_plus(login.password)}@"
    return f"{match['scheme']}{userinfo}{hosts}/{path}?{urlencode(options)}"


def redacted(uri: str) -> str:
    """A connection string fit for a message: the password replaced by ***."""
    return re.sub(r"^(mongodb(?:\+srv)?://[^:@/]*):[^@/]*@", r"\1:***@", uri)


def connection_string(who: str = ADMIN) -> str:
    """The connection string for a command run by hand: MINING_MONGO_URI as set (it carries its own user);
    unset, the dev stack's default with the stored login of `who` (when the stack has made one)."""
    configured = os.environ.get("MINING_MONGO_URI")
    logins = load()
    if configured:
        # A URI without a user (the README's way of moving the dev stack's port) gets the stack's stored login,
        # as the stack's own services do; one with a user is the operator's.
        from pymongo import uri_parser

        if uri_parser.parse_uri(configured)["username"]:
            return configured
        try:
            return with_login(configured, login_for(who, logins))
        except CredentialsMissing:  # no stack has stored a login: the URI as it is
            return configured
    default = settings.setting("MINING_MONGO_URI")
    if who == ADMIN and ADMIN not in logins:
        return default  # a stack that has not started yet: no users exist
    return with_login(default, login_for(who, logins))
