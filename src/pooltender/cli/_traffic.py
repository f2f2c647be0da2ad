"""Gentle built-in traffic for ``pooltender demo --traffic``: enough to make the dashboard move."""

from __future__ import annotations

import contextlib
import itertools
import threading
import time

import httpx

__all__ = ["FAST_PATHS", "start_traffic", "wait_until_up"]

FAST_PATHS = ("/users/1", "/users/2/items", "/items/3", "/users?limit=10", "/analytics/summary")
SLOW_PATH = "/reports/slow?seconds=1.5"


def start_traffic(
    base_url: str,
    stop: threading.Event,
    *,
    fast_per_second: float = 10.0,
    slow_every: float = 2.0,
) -> list[threading.Thread]:
    """Two daemon threads: quick reads at ``fast_per_second`` and a slow report
    (holds a connection 1.5 s) every ``slow_every`` seconds, until ``stop`` is set.
    Failures are ignored: the demo may still be starting or already stopping."""

    def loop(paths: itertools.cycle[str], pause: float) -> None:
        with httpx.Client(base_url=base_url, timeout=10.0) as client:
            while not stop.is_set():
                with contextlib.suppress(httpx.HTTPError):
                    client.get(next(paths))
                stop.wait(pause)

    threads = [
        threading.Thread(
            target=loop, args=(itertools.cycle(FAST_PATHS), 1 / fast_per_second), daemon=True
        ),
        threading.Thread(target=loop, args=(itertools.cycle([SLOW_PATH]), slow_every), daemon=True),
    ]
    for thread in threads:
        thread.start()
    return threads


def wait_until_up(base_url: str, timeout: float = 30.0) -> bool:
    """True once ``/health/live`` answers 200."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base_url}/health/live", timeout=1.0).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    return False
