"""Fault 1: the server restarts under steady concurrent load (simulated by the proxy).

The shared PostgreSQL is never restarted: the proxy resets every connection and
refuses new ones for the outage, then forwards again.
"""

from __future__ import annotations

import asyncio
import time

import httpx
import psycopg
import pytest

from tests.support.load import Load
from tests.support.pg import backends_behind, proxied_url
from tests.support.proxy import Proxy
from tests.support.service import Service

pytestmark = pytest.mark.integration

OUTAGE = 3.0
AFTER = 4.0


async def get_user(client: httpx.AsyncClient, number: int) -> httpx.Response:
    return await client.get(f"/users/{number}")


async def test_restart_under_load_answers_503_then_recovers(
    proxy: Proxy, admin: psycopg.Connection
) -> None:
    # The acceptance scenario: pool 5, DATABASE_POOL_TIMEOUT=2, 8 concurrent clients.
    env = {
        "DATABASE_URL": proxied_url(proxy),
        "DATABASE_POOL_SIZE": "5",
        "DATABASE_POOL_TIMEOUT": "2",
        "DATABASE_CONNECT_TIMEOUT": "2",
    }
    with Service(env) as service:
        load = Load(service.url, clients=8, request=get_user)
        stop = asyncio.Event()
        running = asyncio.create_task(load.run(stop))
        await asyncio.sleep(1.0)
        proxy.cut(refuse=True)
        down = time.monotonic()
        await asyncio.sleep(OUTAGE)
        restoring = time.monotonic()
        proxy.restore()
        back = time.monotonic()
        await asyncio.sleep(AFTER)
        stop.set()
        answers = await running

        # Requests made and answered while the outage lasted (one in flight when the
        # server comes back may legitimately succeed).
        during = [a for a in answers if down < a.sent and a.sent + a.elapsed < restoring]
        after = [a for a in answers if a.sent >= back + 2.0]
        assert {a.status for a in answers} <= {200, 503}, (load.statuses, service.output()[-3000:])
        assert load.slowest < 4.0
        assert during
        assert all(a.status == 503 for a in during), [
            (round(a.sent - down, 3), round(a.elapsed, 3)) for a in during if a.status != 503
        ]
        assert after
        assert all(a.status == 200 for a in after)

        # No connection leaked: nothing checked out, no more backends than the pool holds.
        async with httpx.AsyncClient(base_url=service.url) as client:
            pool = (await client.get("/_pool")).json()
        assert pool["checked_out"] == 0
        assert len(backends_behind(admin, proxy)) <= 5 + 10
        assert "garbage collector" not in service.output()
