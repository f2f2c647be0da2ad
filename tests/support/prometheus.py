"""A real Prometheus server for a test: Debian's binary, a temp dir, a loopback port.

```python
with Prometheus(tmp_path, targets={"demo": ["127.0.0.1:8001"]}, rule_files=[rules]) as prom:
    prom.query('up{job="demo"}')
```

It scrapes (and evaluates its rules) every second and keeps its data in ``directory``.
``scripts/prometheus.sh`` installs the binary (``make services`` runs it).
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx

__all__ = ["Prometheus", "PrometheusError"]


class PrometheusError(RuntimeError):
    """Prometheus refused a query (bad PromQL) or did not start."""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Prometheus:
    def __init__(
        self,
        directory: Path,
        *,
        targets: Mapping[str, Sequence[str]],
        rule_files: Sequence[Path] = (),
        interval: str = "1s",
        start_timeout: float = 20.0,
    ) -> None:
        binary = shutil.which("prometheus")
        if binary is None:
            raise PrometheusError(
                "prometheus is not installed: run `bash scripts/prometheus.sh` (make services)"
            )
        self.binary = binary
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.start_timeout = start_timeout
        self.config = directory / "prometheus.yml"
        self.log = directory / "prometheus.log"
        config = {  # JSON is YAML
            "global": {"scrape_interval": interval, "evaluation_interval": interval},
            "rule_files": [str(path) for path in rule_files],
            "scrape_configs": [
                {"job_name": job, "static_configs": [{"targets": list(addresses)}]}
                for job, addresses in targets.items()
            ],
        }
        self.config.write_text(json.dumps(config, indent=2))
        self.process: subprocess.Popen[bytes] | None = None
        self.url = ""

    def start(self) -> Prometheus:
        # The port is chosen free, then bound by Prometheus: should another process take
        # it in between, Prometheus exits at once and the next port is tried.
        for _ in range(3):
            port = _free_port()
            self.url = f"http://127.0.0.1:{port}"
            with self.log.open("ab") as log:
                self.process = subprocess.Popen(
                    [
                        self.binary,
                        f"--config.file={self.config}",
                        f"--storage.tsdb.path={self.directory / 'data'}",
                        f"--web.listen-address=127.0.0.1:{port}",
                        "--log.level=warn",
                    ],
                    cwd=self.directory,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            if self._wait_ready():
                return self
            if "address already in use" not in self.output():
                break
        self.stop()
        raise PrometheusError(f"prometheus did not start:\n{self.output()}")

    def _wait_ready(self) -> bool:
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                return False
            try:
                if httpx.get(f"{self.url}/-/ready", timeout=1).status_code == 200:
                    return True
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        return False

    def api(self, path: str, **params: str | list[str]) -> Any:
        """The ``data`` of ``GET /api/v1/<path>``; :class:`PrometheusError` on an error."""
        response = httpx.get(f"{self.url}/api/v1/{path}", params=params, timeout=10)
        body = response.json()
        if body.get("status") != "success":
            raise PrometheusError(f"{path} {params}: {body.get('errorType')}: {body.get('error')}")
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query's series: ``[{"metric": {...}, "value": [time, "1.5"]}, ...]``."""
        data = self.api("query", query=expr)
        if data["resultType"] != "vector":
            raise PrometheusError(f"{expr}: a {data['resultType']}, not a vector")
        result: list[dict[str, Any]] = data["result"]
        return result

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self) -> None:
        process = self.process
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)

    def __enter__(self) -> Prometheus:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
