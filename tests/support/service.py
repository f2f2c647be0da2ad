"""Run a FastAPI app as a real uvicorn server in a subprocess, on an ephemeral port.

The listening socket is bound here (port 0) and handed to uvicorn with ``--fd``
(through :mod:`tests.support.uvicorn_fd`, which keeps it a TCP socket): no port race,
and ``--workers N`` shares it. ``args`` are more uvicorn options
(``["--proxy-headers", "--forwarded-allow-ips", "*"]``). The server's output goes to a
file the test can read (``service.output()``).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import httpx

__all__ = ["ROOT", "Service"]

ROOT = Path(__file__).resolve().parents[2]


class Service:
    """``with Service(env) as service: httpx.get(service.url + "/health/live")``."""

    def __init__(
        self,
        env: dict[str, str],
        *,
        app: str = "tests.support.app:app",
        workers: int = 1,
        wait: bool = True,
        start_timeout: float = 20.0,
        args: Sequence[str] = (),
    ) -> None:
        self.env = env
        self.args = list(args)
        self.app = app
        self.workers = workers
        self.wait = wait
        self.start_timeout = start_timeout
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind(("127.0.0.1", 0))
        self._socket.listen(1024)
        self.port = self._socket.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._log = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed in __exit__
            prefix="pooltender-service-", suffix=".log"
        )
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Service:
        fd = self._socket.fileno()
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("DATABASE_", "POOLTENDER_", "PYTEST_"))
        }
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), str(ROOT)])
        env["PYTHONWARNINGS"] = "always"
        env.update(self.env)
        command = [sys.executable, "-m", "tests.support.uvicorn_fd", self.app, "--fd", str(fd)]
        command += ["--log-level", "warning", "--no-access-log", "--timeout-graceful-shutdown", "3"]
        if self.workers > 1:
            command += ["--workers", str(self.workers)]
        command += self.args
        self.process = subprocess.Popen(
            command,
            cwd=tempfile.gettempdir(),  # no stray .env
            env=env,
            pass_fds=(fd,),
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        if self.wait:
            self.wait_live()
        return self

    def wait_live(self) -> None:
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(
                    f"service exited with {self.process.returncode}:\n{self.output()}"
                )
            try:
                if httpx.get(self.url + "/health/live", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"service not live after {self.start_timeout}s:\n{self.output()}")

    def stop(self) -> int | None:
        process = self.process
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
        self._socket.close()
        return process.returncode if process is not None else None

    def output(self) -> str:
        return Path(self._log.name).read_text(errors="replace")

    def __enter__(self) -> Service:
        return self if self.process is not None else self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
        self._log.close()
