"""Run an ASGI app with uvicorn in a background thread on an ephemeral loopback port."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from typing import Any

import uvicorn

from ._common import CliError

__all__ = ["serve_in_thread"]


@contextlib.contextmanager
def serve_in_thread(app: Any, *, startup_timeout: float = 30.0) -> Iterator[str]:
    """Yield ``http://127.0.0.1:<port>`` while ``app`` serves; stop it on exit."""
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="pooltender-demo", daemon=True)
    thread.start()
    deadline = time.monotonic() + startup_timeout
    while not server.started:
        if not thread.is_alive():
            raise CliError("the demo service did not start (see the log above)")
        if time.monotonic() > deadline:
            server.should_exit = True
            raise CliError(f"the demo service did not start within {startup_timeout:g} s")
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)
