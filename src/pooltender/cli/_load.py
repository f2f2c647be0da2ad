"""The load generator behind ``pooltender bench``: bounded, concurrent, loopback only."""

from __future__ import annotations

import asyncio
import ipaddress
import math
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx

from ._common import CliError

__all__ = ["Answer", "Load", "LoadResult", "percentile", "require_loopback", "run_load"]

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


Request = Callable[[httpx.AsyncClient, int], Awaitable[httpx.Response]]
"""Given a client and the client's number, send one request and return its response."""


@dataclass(frozen=True, slots=True)
class Answer:
    sent: float  # monotonic seconds
    elapsed: float
    status: int  # 0: no HTTP answer (connection error or client timeout)
    client: int
    detail: str = ""  # the body of an answer other than 200, or the transport error


@dataclass
class Load:
    """``clients`` loops sending ``request`` until ``stop`` is set (or ``total`` requests
    were sent); every answer is kept. ``pause_after_503``: seconds a client waits after a
    refusal before its next request (a client honouring ``Retry-After``)."""

    url: str
    clients: int
    request: Request
    timeout: float = 10.0
    pause_after_503: float = 0.0
    total: int | None = None
    answers: list[Answer] = field(default_factory=list)
    on_answer: Callable[[Answer], None] | None = None
    _issued: int = 0

    async def run(self, stop: asyncio.Event) -> list[Answer]:
        limits = httpx.Limits(max_connections=self.clients, max_keepalive_connections=self.clients)
        async with httpx.AsyncClient(base_url=self.url, timeout=self.timeout, limits=limits) as c:
            await asyncio.gather(*(self._client(c, i, stop) for i in range(self.clients)))
        return self.answers

    async def _client(self, client: httpx.AsyncClient, number: int, stop: asyncio.Event) -> None:
        while not stop.is_set():
            if self.total is not None:
                if self._issued >= self.total:
                    return
                self._issued += 1
            sent = time.monotonic()
            try:
                response = await self.request(client, number)
                status, detail = response.status_code, ""
                if status != 200:
                    detail = response.text[:300]
            except httpx.HTTPError as exc:
                status, detail = 0, f"{type(exc).__name__}: {exc}"
            answer = Answer(sent, time.monotonic() - sent, status, number, detail)
            self.answers.append(answer)
            if self.on_answer is not None:
                self.on_answer(answer)
            if status == 503 and self.pause_after_503:
                await asyncio.sleep(self.pause_after_503)

    @property
    def statuses(self) -> Counter[int]:
        return Counter(a.status for a in self.answers)

    def goodput(self, skip: float = 0.5) -> float:
        """200 answers per second, in steady state: after the first ``skip`` seconds."""
        if not self.answers:
            return 0.0
        start = min(a.sent for a in self.answers) + skip
        counted = [a for a in self.answers if a.sent >= start]
        span = max((a.sent + a.elapsed for a in counted), default=start) - start
        return sum(a.status == 200 for a in counted) / span if span > 0 else 0.0

    @property
    def slowest(self) -> float:
        return max((a.elapsed for a in self.answers), default=0.0)


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
    issued = 0

    async def get(client: httpx.AsyncClient, number: int) -> httpx.Response:
        nonlocal issued
        path = paths[issued % len(paths)]
        issued += 1
        return await client.get(path)

    load = Load(
        base_url,
        clients=concurrency,
        request=get,
        timeout=30.0,
        total=requests,
        on_answer=(lambda _: on_done()) if on_done is not None else None,
    )
    stop = asyncio.Event()
    started = time.perf_counter()
    timer = asyncio.get_running_loop().call_later(duration, stop.set)
    try:
        await load.run(stop)
    finally:
        timer.cancel()
    result = LoadResult(label, seconds=time.perf_counter() - started)
    for answer in load.answers:
        if answer.status:
            result.latencies.append(answer.elapsed)
            result.statuses[str(answer.status)] += 1
        else:
            result.statuses[answer.detail.split(":", 1)[0]] += 1
    return result
