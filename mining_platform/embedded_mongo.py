"""The embedded MongoDB-compatible server (SecantusDB) for the dev stack, tests and benchmarks.

SecantusDB is GPL-2.0 and a dev extra: it is only ever run as a separate server
process through its CLI, never imported.
"""

import contextlib
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from pymongo import MongoClient

from mining_platform.settings import console_script


def server_command(*, port: int, storage: Path) -> list[str]:
    return [console_script("secantusd-py"), "--host", "127.0.0.1", "--port", str(port),
            "--storage-path", str(storage), "--log-level", "WARNING"]


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


@contextlib.contextmanager
def running_server(storage: Path, *, port: int | None = None, timeout: float = 60.0) -> Iterator[str]:
    """Start a server on `storage` (a free port by default), yield its URI, stop it on exit."""
    port = port or free_port()
    log_path = storage.with_name(storage.name + ".log")
    with open(log_path, "w") as log:
        server = subprocess.Popen(server_command(port=port, storage=storage), stdout=log, stderr=subprocess.STDOUT)
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
