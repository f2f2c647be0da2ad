"""A real nginx (Debian's package, ``scripts/install-nginx.sh``) as a reverse proxy.

``with Nginx(directives, tmp_path) as nginx: httpx.get(nginx.url + "/")`` writes a
config into ``tmp_path`` (pid, logs and temp paths there too), starts nginx in the
foreground (``daemon off;``) on a free loopback port, and stops it on exit. Started
as root, its workers run as ``nobody`` (the ``user`` directive); otherwise as the
current user. ``directives`` go into ``location /`` (``proxy_pass ...;``).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

__all__ = ["Nginx", "nginx_binary"]

CONFIG = """\
daemon off;
master_process on;
worker_processes 1;
{user}
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 64; }}
http {{
    access_log {dir}/access.log;
    client_body_temp_path {dir}/client_body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    server {{
        listen 127.0.0.1:{port};
        location / {{
{directives}
        }}
    }}
}}
"""


def nginx_binary() -> str:
    """The nginx binary; fails (never skips) with what to run when it is missing."""
    binary = shutil.which("nginx") or (
        "/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else None
    )
    if binary is None:
        raise RuntimeError("nginx is not installed: run scripts/install-nginx.sh (make services)")
    return binary


class Nginx:
    """nginx proxying ``location /`` with ``directives``, on ``127.0.0.1:<port>``."""

    def __init__(self, directives: str, directory: Path, *, start_timeout: float = 10.0) -> None:
        self.directives = directives
        self.directory = directory
        self.start_timeout = start_timeout
        self.port = 0
        self.url = ""
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Nginx:
        binary = nginx_binary()
        self.directory.mkdir(parents=True, exist_ok=True)
        for attempt in range(3):  # a free port may be taken between the probe and nginx
            self.port = _free_port()
            self.url = f"http://127.0.0.1:{self.port}"
            config = self.directory / "nginx.conf"
            config.write_text(
                CONFIG.format(
                    user="user nobody nogroup;" if os.geteuid() == 0 else "",
                    dir=self.directory,
                    port=self.port,
                    directives="\n".join(" " * 12 + line for line in self.directives.splitlines()),
                )
            )
            self.process = subprocess.Popen(
                [
                    binary,
                    "-p",
                    str(self.directory),
                    "-c",
                    str(config),
                    "-e",
                    str(self.directory / "error.log"),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.STDOUT,
            )
            if self._wait_listening():
                return self
            if "Address already in use" not in self.log() or attempt == 2:
                break
        self.stop()
        raise RuntimeError(f"nginx did not start:\n{self.log()}")

    def _wait_listening(self) -> bool:
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                return False
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return True
            except OSError:
                time.sleep(0.05)
        return False

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGQUIT)  # graceful: workers finish, then exit
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)

    def log(self) -> str:
        path = self.directory / "error.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def __enter__(self) -> Nginx:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
