"""Fault 3: the network drops every packet silently (no FIN, no RST) mid-query.

The server's statement timeout cannot help (its answer never arrives), so a
client-side bound (statement timeout + 1 s grace) ends the request with a 503: asyncpg's
command timeout, psycopg's deadline (pooltender.deadline shuts the socket down). The
connection is dropped, and the pool recovers once traffic flows.
"""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from tests.support.pg import proxied_url
from tests.support.proxy import Proxy
from tests.support.service import Service

pytestmark = pytest.mark.integration

STATEMENT_TIMEOUT = 1.0
COMMAND_TIMEOUT = STATEMENT_TIMEOUT + 1.0  # pooltender.engine.COMMAND_TIMEOUT_GRACE
CONNECT_TIMEOUT = 1.0


# libpq's connect_timeout has a floor of 2 s; asyncpg takes DATABASE_CONNECT_TIMEOUT as is.
CONNECT_BOUND = {"asyncpg": CONNECT_TIMEOUT, "psycopg": 2.0}


@pytest.mark.parametrize("driver", ["asyncpg", "psycopg"])
async def test_blackhole_mid_query_fails_within_the_command_timeout(
    proxy: Proxy, driver: str
) -> None:
    env = {
        "DATABASE_URL": proxied_url(proxy).replace("+asyncpg", f"+{driver}"),
        "DATABASE_POOL_SIZE": "2",
        "DATABASE_STATEMENT_TIMEOUT": str(STATEMENT_TIMEOUT),
        "DATABASE_CONNECT_TIMEOUT": str(CONNECT_TIMEOUT),
    }
    with Service(env) as service:
        async with httpx.AsyncClient(base_url=service.url, timeout=20) as client:
            assert (await client.get("/users/1")).status_code == 200
            slow = asyncio.create_task(client.get("/sleep", params={"seconds": 0.5}))
            await asyncio.sleep(0.15)
            proxy.blackhole()
            started = time.monotonic()
            answer = await slow
            elapsed = time.monotonic() - started
            assert answer.status_code == 503
            assert answer.json()["detail"]["reason"] == "unreachable"
            # The body names the database and the reason; the detail is in the log.
            assert answer.json()["detail"]["message"] == "database 'primary' is unreachable"
            assert elapsed < COMMAND_TIMEOUT + 0.5

            # While it lasts: the pre-ping times out, the reconnect too; 503, bounded.
            started = time.monotonic()
            assert (await client.get("/users/2")).status_code == 503
            assert time.monotonic() - started < COMMAND_TIMEOUT + CONNECT_BOUND[driver] + 1.0

            proxy.restore()
            await asyncio.sleep(0.2)
            statuses = [(await client.get(f"/users/{i}")).status_code for i in range(10)]
            assert statuses == [200] * 10
            assert (await client.get("/_pool")).json()["checked_out"] == 0
        service.stop()
        assert "Traceback" not in service.output()
        assert f"no answer within {COMMAND_TIMEOUT:g}s" in service.output()
