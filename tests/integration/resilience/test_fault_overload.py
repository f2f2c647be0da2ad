"""Fault 4: a burst at 10x capacity. Refuse the excess at once, serve the rest well."""

from __future__ import annotations

import asyncio
import statistics

import httpx
import pytest

from tests.support.load import Load
from tests.support.pg import PG_URL
from tests.support.service import Service

pytestmark = pytest.mark.integration

POOL = 4
HOLD = 0.1  # seconds each request holds its connection
BASELINE = 2.0
BURST = 4.0


async def hold(client: httpx.AsyncClient, number: int) -> httpx.Response:
    return await client.get("/sleep", params={"seconds": HOLD})


async def measure(url: str, clients: int, seconds: float) -> Load:
    load = Load(url, clients=clients, request=hold, pause_after_503=0.25)
    stop = asyncio.Event()
    running = asyncio.create_task(load.run(stop))
    await asyncio.sleep(seconds)
    stop.set()
    await running
    return load


async def test_burst_at_ten_times_capacity() -> None:
    env = {
        "DATABASE_URL": PG_URL,
        "DATABASE_POOL_SIZE": str(POOL),
        "DATABASE_MAX_OVERFLOW": "0",
        "DATABASE_POOL_TIMEOUT": "2",
    }
    with Service(env) as service:
        # Capacity: the pool kept busy without refusals (POOL in use, POOL waiting).
        baseline = await measure(service.url, clients=2 * POOL, seconds=BASELINE)
        capacity = baseline.goodput()
        assert capacity > 0.75 * POOL / HOLD  # each connection: one request per HOLD at best
        burst = await measure(service.url, clients=POOL * 10, seconds=BURST)

        refused_at_baseline = [a.detail for a in baseline.answers if a.status != 200]
        assert set(baseline.statuses) == {200}, refused_at_baseline
        assert set(burst.statuses) <= {200, 503}, burst.statuses
        assert burst.statuses[503] > 0  # the excess is refused, not queued

        served = [a.elapsed for a in burst.answers if a.status == 200]
        base = [a.elapsed for a in baseline.answers]
        # Served requests keep their latency: the wait queue is bounded at POOL and served
        # in order, so a waiting checkout waits about one HOLD, never the pool timeout (2 s;
        # out of order, woken waiters that lost their connection waited that long). On the
        # server (the pool's own wait times), with room for a loaded machine's loop lag (CI's
        # oldest leg once gave a p99 of 1.03 s, a quiet machine 0.2-0.3 s):
        async with httpx.AsyncClient(base_url=service.url) as client:
            stats = (await client.get("/debug/pool-stats")).json()["databases"]["primary"]
        assert stats["wait_time"]["p99"] < 15 * HOLD, stats["wait_time"]
        # And as the clients see it, with room for the client's own CPU share:
        assert statistics.median(served) < statistics.median(base) + 2 * HOLD
        assert max(served) < 2.0  # never the pool timeout
        # Refusals are immediate.
        refused = [a.elapsed for a in burst.answers if a.status == 503]
        assert statistics.median(refused) < HOLD
        goodput = burst.goodput()
        # The refusals cost little: the served keep (nearly) all of the capacity. A quiet
        # machine gives 0.95-1.05; 0.8 leaves room for a loaded one (CI's oldest leg once
        # gave 0.87) and still fails when refusing costs the served a fifth of their CPU.
        assert goodput >= 0.8 * capacity, (goodput, capacity)

        await asyncio.sleep(0.5)
        async with httpx.AsyncClient(base_url=service.url) as client:
            pool = (await client.get("/_pool")).json()
        assert pool["checked_out"] == 0
        assert pool["waiting"] == 0
        assert pool["overflow"] <= 0
