"""``pooltender demo --traffic``: the built-in load reaches the demo's routes."""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from pooltender.cli._traffic import FAST_PATHS, SLOW_PATH, start_traffic
from pooltender_demo import create_app
from tests.support.servers import serve


def test_traffic_reaches_fast_and_slow_routes(tmp_path: Path) -> None:
    demo = create_app({"POOLTENDER_DEMO_DIR": str(tmp_path)})
    seen: Counter[tuple[str, int]] = Counter()

    async def counting(scope: Any, receive: Any, send: Any) -> None:
        async def record(message: Any) -> None:
            if message["type"] == "http.response.start":
                seen[(scope["path"], message["status"])] += 1
            await send(message)

        await demo(scope, receive, record if scope["type"] == "http" else send)

    stop = threading.Event()
    with serve(counting) as base:
        threads = start_traffic(base, stop, fast_per_second=50, slow_every=0.2)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not (
            seen[("/reports/slow", 200)] and len(seen) >= len(FAST_PATHS)
        ):
            time.sleep(0.1)
        stop.set()
        for thread in threads:
            thread.join(10)
    assert seen[("/reports/slow", 200)] >= 1, seen
    assert SLOW_PATH.startswith("/reports/slow")
    for path in FAST_PATHS:
        assert (path.split("?")[0], 200) in seen, seen
