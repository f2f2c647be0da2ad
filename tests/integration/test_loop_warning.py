"""The event-loop warning under a real uvicorn: a blocking call is named, with its line
and route; a loop that is only busy (many short awaits on saturated CPUs) is not."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.support.service import Service

pytestmark = pytest.mark.integration

PG_URL = os.environ.get(
    "POOLTENDER_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)
APP = Path(__file__).parents[1] / "apps" / "loop_app.py"
BLOCKED = "event loop blocked"


def line_of(marker: str) -> int:
    lines = APP.read_text().splitlines()
    return next(number for number, line in enumerate(lines, 1) if marker in line)


@pytest.fixture
def saturated_cpus() -> Iterator[int]:
    """One busy process per core (a real CPU-saturating load), for the block's duration."""
    count = os.cpu_count() or 2
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]
    try:
        yield count
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait(5)


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_a_busy_loop_is_not_blocked_and_a_blocking_call_is_named(
    loop: str, saturated_cpus: int
) -> None:
    env = {"DATABASE_URL": PG_URL, "POOLTENDER_LOOP_BLOCK_THRESHOLD": "0.05"}
    with Service(env, app="tests.apps.loop_app:app", args=["--loop", loop]) as service:
        with httpx.Client(base_url=service.url, timeout=60) as client:
            lag = client.get("/busy", params={"tasks": 100, "rounds": 2})
            assert lag.status_code == 200
            started = time.monotonic()
            with ThreadPoolExecutor(3) as pool:  # several requests at once, like a benchmark
                answers = list(pool.map(lambda _: client.get("/busy"), range(6)))
            busy_seconds = time.monotonic() - started
            assert [a.status_code for a in answers] == [200] * 6
            time.sleep(0.5)  # a few watchdog passes after the last request
            busy_log = service.output()
            assert client.get("/sleep", params={"seconds": 0.4}).status_code == 200
            time.sleep(0.5)
        log = service.output()
    print(f"{loop}: 6 x /busy (5000 tasks x 20 awaits) took {busy_seconds:.1f}s on"
          f" {saturated_cpus} saturated cores")  # fmt: skip
    assert BLOCKED not in busy_log, busy_log
    site = f"loop_app.py:{line_of('BLOCKING-LINE')} in sleep"
    warnings = [line for line in log.splitlines() if BLOCKED in line]
    assert len(warnings) == 1, log
    assert re.search(rf"{BLOCKED} for .* in GET /sleep at .*{re.escape(site)}", warnings[0]), log
