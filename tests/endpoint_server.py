"""Running an ASGI app on a free loopback port in a thread, for tests that need real HTTP and concurrency."""

import contextlib
import threading

import uvicorn

from mining_platform.tools.embedded_mongo import free_port
from tests.conftest import wait_until


@contextlib.contextmanager
def running(app, *, timeout: float = 30.0):
    """Serve `app` with uvicorn (its lifespan included); yields the base URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    try:
        wait_until(lambda: server.started or not thread.is_alive(), timeout=timeout, what="the test endpoint")
        if not server.started:
            raise RuntimeError("the test endpoint failed to start (see the log above)")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=timeout)
