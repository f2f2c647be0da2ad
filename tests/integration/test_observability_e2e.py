"""End to end on PostgreSQL: a real uvicorn server running tests/integration/service_app.py."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from pooltender.metrics import METRICS

pytestmark = pytest.mark.integration

HERE = Path(__file__).parent
APP = HERE / "service_app.py"
TOKEN = "t3-e2e-token"
PG_URL = os.environ.get("T3_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")


def line_of(marker: str) -> int:
    for number, line in enumerate(APP.read_text().splitlines(), start=1):
        if marker in line:
            return number
    raise AssertionError(marker)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    log = tmp_path / "server.log"
    env = {
        **os.environ,
        "DATABASE_URL": PG_URL,
        "DATABASE_LEAK_THRESHOLD": "1",
        "POOLTENDER_DEBUG_TOKEN": TOKEN,
        "PYTHONPATH": os.pathsep.join([str(HERE), *sys.path]),
    }
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "service_app:app", "--port", "0"],
            cwd=HERE,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 20
        while True:
            match = re.search(r"running on (http://127\.0\.0\.1:\d+)", log.read_text())
            if match:
                break
            assert process.poll() is None, f"server exited:\n{log.read_text()}"
            assert time.monotonic() < deadline, f"server did not start:\n{log.read_text()}"
            time.sleep(0.05)
        yield match.group(1), log
    finally:
        process.terminate()
        process.wait(10)


def test_leak_blocking_and_streaming_routes_are_named_with_their_sites(
    server: tuple[str, Path],
) -> None:
    base, log = server
    auth = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=base, timeout=10) as client:
        assert client.get("/users/5").json() == {"id": 5}
        assert client.get("/leak").status_code == 200
        assert client.get("/sleep").status_code == 200
        assert client.get("/stream").text == "chunk\n" * 3
        time.sleep(1.0)  # past the leak threshold of /leak, and a few watchdog passes

        assert client.get("/debug/pool-stats").status_code == 401
        assert client.get("/metrics").status_code == 401
        stats = client.get("/debug/pool-stats", headers=auth).json()
        metrics = client.get("/metrics", headers=auth).text

    text = log.read_text()
    leak_site = f"service_app.py:{line_of('LEAK-SITE')} in leak"
    sleep_site = f"service_app.py:{line_of('SLEEP-SITE')} in sleep"
    stream_site = f"service_app.py:{line_of('STREAM-SITE')} in stream"
    assert re.search(rf"WARNING.*GET /leak at {re.escape(leak_site)}.*suspected leak", text), text
    assert re.search(rf"WARNING.*event loop blocked.*GET /sleep at {sleep_site}", text), text
    assert re.search(rf"WARNING.*GET /stream at {stream_site}.*after the response", text), text

    primary = stats["databases"]["primary"]
    [leaked] = [h for h in primary["held"] if h["leak"]]
    assert leaked["route"] == "GET /leak"
    assert leaked["site"] == leak_site
    assert primary["leaks_suspected"] >= 2  # /leak, and /stream held for 1.5 s
    assert primary["loop_blocked"]["count"] >= 1
    assert primary["held_after_response"] == 1

    families = {f.name: f for f in text_string_to_metric_families(metrics)}
    for name, (kind, _, _) in METRICS.items():
        assert (name.removesuffix("_total") if kind == "counter" else name) in families, name
    states = {s.labels["state"] for s in families["db_client_connection_count"].samples}
    assert states == {"idle", "used"}
    routes = {s.labels["route"] for s in families["db_client_connection_use_time_seconds"].samples}
    assert {"GET /sleep", "GET /stream", "GET /users/{user_id}"} <= routes
