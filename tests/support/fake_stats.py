"""TEST FIXTURE: a small FastAPI app serving a contract-shaped ``/debug/pool-stats``.

The unit tests of the dashboard's routes and of ``pooltender top`` use it to drive the
snapshot contract with figures they control (the Chromium test runs a real service).
Its figures are not invented: they come from the requests the test sends to ``/work``
and ``/leak``, each holding a slot of a semaphore-bounded fake pool while it runs.
Route names carry HTML (``<b>``) so tests can prove the consumers escape them.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import statistics
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import Depends, FastAPI

from pooltender.dashboard import dashboard_router
from pooltender.stats import Durations, HeldConnection, PoolStats, RouteStats, Snapshot

__all__ = ["HTML_ROUTE", "FakePool", "create_fake_app"]

HTML_ROUTE = "GET /work/<b>{id}</b>"


def _durations(values: list[float]) -> Durations:
    if not values:
        return Durations()
    ordered = sorted(values)

    def pct(p: float) -> float:
        return ordered[min(len(ordered) - 1, int(p * len(ordered)))]

    return Durations(
        count=len(ordered),
        p50=statistics.median(ordered),
        p90=pct(0.90),
        p99=pct(0.99),
        max=ordered[-1],
        sum=sum(ordered),
    )


class FakePool:
    """A pool of ``size`` slots whose checkouts are real ``asyncio`` waits."""

    def __init__(self, name: str, size: int = 5, leak_after: float = 1.0) -> None:
        self.name = name
        self.size = size
        self.leak_after = leak_after
        self._slots = asyncio.Semaphore(size)
        self._ids = itertools.count(1)
        self.held: dict[int, tuple[str, float, str]] = {}
        self.waiting = 0
        self.checkouts = 0
        self.waits: list[float] = []
        self.uses: list[float] = []
        self.routes: dict[str, list[float]] = {}

    @contextlib.asynccontextmanager
    async def checkout(self, route: str, site: str) -> AsyncIterator[None]:
        start = time.monotonic()
        self.waiting += 1
        try:
            await self._slots.acquire()
        finally:
            self.waiting -= 1
        got = time.monotonic()
        self.waits.append(got - start)
        ident = next(self._ids)
        self.held[ident] = (route, got, site)
        self.checkouts += 1
        try:
            yield
        finally:
            del self.held[ident]
            used = time.monotonic() - got
            self.uses.append(used)
            self.routes.setdefault(route, []).append(used)
            self._slots.release()

    def stats(self) -> PoolStats:
        """This fake pool's snapshot, built as pooltender builds its own (typed)."""
        now = time.monotonic()
        held = tuple(
            HeldConnection(
                id=ident,
                route=route,
                age=now - since,
                site=site,
                leak=now - since > self.leak_after,
                after_response=False,
            )
            for ident, (route, since, site) in sorted(self.held.items())
        )
        routes = sorted(
            (RouteStats(route, _durations(holds)) for route, holds in self.routes.items()),
            key=lambda r: -r.hold.sum,
        )
        out = len(self.held)
        leaking = sum(1 for h in held if h.leak)
        return PoolStats(
            name=self.name,
            url=f"sqlite+aiosqlite:///{self.name}.db",
            driver="sqlite+aiosqlite",
            server=f"{self.name}.db",
            pool_size=self.size,
            checked_out=out,
            overflow=0,
            total=self.size,
            available=self.size - out,
            max=self.size,
            waiting=self.waiting,
            max_waiting=None,
            server_connections_max=None,
            connections_leaking=leaking,
            timeouts=0,
            rejected=0,
            leaks_suspected=leaking,
            checkouts=self.checkouts,
            connections_created=self.size,
            connections_invalidated=0,
            connections_reclaimed=0,
            held_after_response=0,
            failovers=0,
            wait_time=_durations(self.waits),
            use_time=_durations(self.uses),
            connect_time=_durations([0.001] * self.size),
            routes=tuple(routes),
            held=held,
        )


def create_fake_app(guard: Callable[..., Any] | None = None) -> FastAPI:
    """The fixture app: ``/work?ms=``, ``/leak?ms=``, ``/debug/pool-stats``, ``/debug/pool``.

    ``guard`` (a dependency) protects both debug endpoints, as the real access rule does.
    """
    debug = [Depends(guard)] if guard is not None else []
    app = FastAPI()
    pools = {"primary": FakePool("primary"), "analytics": FakePool("analytics", size=2)}
    app.state.fake_pools = pools

    @app.get("/work")
    async def work(ms: float = 20.0) -> dict[str, bool]:
        async with pools["primary"].checkout(HTML_ROUTE, "fake_stats.py:1 in work"):
            await asyncio.sleep(ms / 1000)
        return {"ok": True}

    @app.get("/leak")
    async def leak(ms: float = 1500.0) -> dict[str, bool]:
        async with pools["analytics"].checkout("GET /leak", "fake_stats.py:2 in leak"):
            await asyncio.sleep(ms / 1000)
        return {"ok": True}

    @app.get("/debug/pool-stats", dependencies=debug)
    async def pool_stats() -> dict[str, Any]:
        snapshot = Snapshot(time.time(), {name: pool.stats() for name, pool in pools.items()})
        return snapshot.to_json()

    app.include_router(dashboard_router(guard), prefix="/debug")
    return app
