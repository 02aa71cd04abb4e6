"""The embedded MongoDB-compatible server (SecantusDB) for the dev stack, tests and benchmarks.

SecantusDB is GPL-2.0 and a dev extra: it is only ever run as a separate server
process through its CLI, never imported.
"""

import contextlib
import secrets
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote_plus

from pymongo import MongoClient

from mining_platform.settings import console_script


def server_command(*, port: int, storage: Path, auth: bool = True) -> list[str]:
    """The server on loopback; with `auth` (the default) every command but the handshake needs a SCRAM user."""
    return [console_script("secantusd-py"), "--host", "127.0.0.1", "--port", str(port),
            "--storage-path", str(storage), "--log-level", "WARNING", *(["--auth"] if auth else [])]


def loopback_uri(port: int) -> str:
    return f"mongodb://127.0.0.1:{port}/?directConnection=true"


def answers(uri: str) -> bool:
    """True when a server at `uri` answers a ping."""
    with MongoClient(uri, serverSelectionTimeoutMS=1000) as client:
        try:
            client.admin.command("ping")
            return True
        except Exception:  # any failure to answer means "not (yet) up"
            return False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bootstrap_admin(storage: Path, *, user: str, password: str, timeout: float = 60.0) -> None:
    """Create the first user (root) on a server's storage that has none yet.

    The server has no localhost exception: a user can only be created while it runs without
    `--auth`. So it is started once without authentication on a free loopback port, only for
    this, and stopped again; from then on it runs with `--auth`.
    """
    with running_server(storage, timeout=timeout, auth=False) as uri, \
            MongoClient(uri, serverSelectionTimeoutMS=int(timeout * 1000)) as client:
        if client.admin.command("usersInfo", {"user": user, "db": "admin"})["users"]:
            raise RuntimeError(f"{storage} already has a user {user!r} whose password is not known here; restore "
                               "the credentials file, or remove the storage to start over")
        client.admin.command("createUser", user, pwd=password, roles=[{"role": "root", "db": "admin"}])


@contextlib.contextmanager
def running_server(storage: Path, *, port: int | None = None, timeout: float = 60.0,
                   auth: bool = False) -> Iterator[str]:
    """Start a server on `storage` (a free port by default), yield its URI (no credentials), stop it on exit."""
    port = port or free_port()
    log_path = storage.with_name(storage.name + ".log")
    with open(log_path, "w") as log:
        server = subprocess.Popen(server_command(port=port, storage=storage, auth=auth), stdout=log,
                                  stderr=subprocess.STDOUT)
        uri = loopback_uri(port)
        try:
            deadline = time.monotonic() + timeout
            while not answers(uri):
                if server.poll() is not None:
                    raise RuntimeError(f"secantusd-py exited with {server.returncode}; see {log_path}")
                if time.monotonic() > deadline:
                    raise TimeoutError(f"embedded MongoDB not ready after {timeout}s; see {log_path}")
                time.sleep(0.1)
            yield uri
        finally:
            server.terminate()
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()


@contextlib.contextmanager
def secured_server(storage: Path, *, timeout: float = 60.0) -> Iterator[str]:
    """A server with `--auth` on fresh `storage` and a root user of its own; yields that user's URI.

    What tests and benchmarks run against: authentication on, as in the dev stack and production.
    """
    user, password = "root", secrets.token_urlsafe(16)
    bootstrap_admin(storage, user=user, password=password, timeout=timeout)
    with running_server(storage, timeout=timeout, auth=True) as uri:
        port = uri.split(":")[2].split("/")[0]
        yield f"mongodb://{user}:{quote_plus(password)}@127.0.0.1:{port}/?directConnection=true&authSource=admin"
