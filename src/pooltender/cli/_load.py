"""The load generator behind ``pooltender bench``: bounded, concurrent, loopback only."""

from __future__ import annotations

import asyncio
import ipaddress
import math
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx

from ._common import CliError

__all__ = ["LoadResult", "percentile", "require_loopback", "run_load"]

LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}


def require_loopback(url: str) -> None:
    """Refuse any URL that is not on this machine: bench is not a load-testing service."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise CliError(f"{url!r} is not an http(s) URL (expected e.g. http://127.0.0.1:8000)")
    host = parts.hostname
    if host in LOOPBACK_NAMES:
        return
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise CliError(f"bench only loads loopback addresses (127.0.0.1, ::1), not {host!r}")


def percentile(ordered: Sequence[float], p: float) -> float | None:
    """Nearest-rank percentile of an ascending sequence; None when empty."""
    if not ordered:
        return None
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass
class LoadResult:
    label: str
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    statuses: Counter[str] = field(default_factory=Counter)

    @property
    def requests(self) -> int:
        return sum(self.statuses.values())

    @property
    def throughput(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> dict[str, Any]:
        ordered = sorted(self.latencies)
        return {
            "label": self.label,
            "requests": self.requests,
            "seconds": round(self.seconds, 3),
            "throughput": round(self.throughput, 1),
            "latency": {f"p{p:g}": percentile(ordered, p) for p in (50, 90, 99)}
            | {"max": ordered[-1] if ordered else None},
            "statuses": dict(sorted(self.statuses.items())),
        }


async def run_load(
    base_url: str,
    paths: Sequence[str],
    *,
    label: str,
    requests: int,
    duration: float,
    concurrency: int,
    on_done: Callable[[], None] | None = None,
) -> LoadResult:
    """Send up to ``requests`` GETs over ``concurrency`` connections for at most
    ``duration`` seconds, cycling through ``paths``. Transport failures count
    under their exception name, never abort the run."""
    result = LoadResult(label)
    issued = 0
    deadline = time.monotonic() + duration
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal issued
        while issued < requests and time.monotonic() < deadline:
            path = paths[issued % len(paths)]
            issued += 1
            start = time.perf_counter()
            try:
                response = await client.get(path)
                status = str(response.status_code)
            except httpx.HTTPError as exc:
                status = type(exc).__name__
            else:
                result.latencies.append(time.perf_counter() - start)
            result.statuses[status] += 1
            if on_done is not None:
                on_done()

    async with httpx.AsyncClient(base_url=base_url, timeout=30.0, limits=limits) as client:
        started = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
        result.seconds = time.perf_counter() - started
    return result
