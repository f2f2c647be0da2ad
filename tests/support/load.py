"""Concurrent HTTP clients that record every answer: when sent, how long, which status."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import httpx

__all__ = ["Answer", "Load", "Request"]

# A request: given a client and the client's number, send one request, return its response.
Request = Callable[[httpx.AsyncClient, int], Awaitable[httpx.Response]]


@dataclass(frozen=True, slots=True)
class Answer:
    sent: float  # monotonic seconds
    elapsed: float
    status: int  # 0: no HTTP answer (connection error or client timeout)
    client: int
    detail: str = ""


@dataclass
class Load:
    """``clients`` loops sending ``request`` until ``stop`` is set (or ``total`` requests
    were sent); every answer is kept."""

    url: str
    clients: int
    request: Request
    timeout: float = 10.0
    pause_after_503: float = 0.0
    total: int | None = None  # stop after this many requests (None: when ``stop`` is set)
    answers: list[Answer] = field(default_factory=list)
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
                if status not in (200, 503):
                    detail = response.text[:300]
            except httpx.HTTPError as exc:
                status, detail = 0, repr(exc)
            self.answers.append(Answer(sent, time.monotonic() - sent, status, number, detail))
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
