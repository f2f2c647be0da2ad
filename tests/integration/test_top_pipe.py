"""``pooltender top`` with its output piped to a file, against a real service."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.support.service import Service

pytestmark = pytest.mark.integration

PG_URL = os.environ.get(
    "POOLTENDER_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1/test"
)
HEADERS = (
    "database", "used", "idle", "wait", "max", "req/s", "timeouts", "rejected", "leaks",
    "wait p50", "wait p99", "use p50", "use p99",
    "route", "checkouts", "total", "p50", "p99", "age", "checkout site",
)  # fmt: skip


def test_top_piped_to_a_file_prints_plain_frames_within_80_columns(tmp_path: Path) -> None:
    out = tmp_path / "top.txt"
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    with Service({"DATABASE_URL": PG_URL}) as service:
        stop = threading.Event()

        def traffic() -> None:
            with httpx.Client(base_url=service.url, timeout=10) as client:
                while not stop.is_set():
                    client.get("/sleep", params={"seconds": 0.2})

        load = threading.Thread(target=traffic)
        load.start()
        try:
            with out.open("w") as file:
                top = subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "pooltender.cli",
                        "top",
                        service.url,
                        "--interval",
                        "0.3",
                    ],
                    stdout=file,
                    stderr=subprocess.STDOUT,
                    env=env,
                )
                try:
                    deadline = time.monotonic() + 20
                    while out.read_text().count("pooltender top ·") < 3:
                        assert top.poll() is None, out.read_text()
                        assert time.monotonic() < deadline, out.read_text()
                        time.sleep(0.1)
                finally:
                    top.terminate()  # as an operator's `timeout` or Ctrl-C would end it
                    top.wait(10)
        finally:
            stop.set()
            load.join(10)
    text = out.read_text()
    assert "\x1b" not in text  # plain: no cursor movement, no colour
    frames = text.count("pooltender top ·")
    assert frames >= 3, text
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= 80, text
    for header in HEADERS:
        assert re.search(rf"┃\s*{re.escape(header)}\s*┃", text), (header, text)
    assert "…" not in text, text  # nothing cut
    assert "GET /sleep" in text
    assert re.search(r"primary\s*│\s*\d+\s*│", text)  # a summary row per frame
