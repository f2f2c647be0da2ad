"""Behind PgBouncer in transaction mode: DATABASE_PGBOUNCER=true makes both drivers safe.

Needs a PgBouncer at PGBOUNCER_URL (``scripts/pgbouncer.sh`` starts one: transaction
mode, 2 server connections). 40 concurrent clients share those 2 server connections
through a pool of up to 20 client connections.
"""

from __future__ import annotations

import asyncio
import os

import httpx
import psycopg
import pytest
from sqlalchemy.engine import make_url

from tests.support.service import Service

pytestmark = pytest.mark.integration

PGBOUNCER_URL = os.environ.get("PGBOUNCER_URL", "postgresql+asyncpg://postgres@127.0.0.1:6432/test")
CLIENTS = 40
REQUESTS = 200


def pgbouncer_pools() -> list[tuple[str, int]]:
    """(database, server connections) per PgBouncer pool, from its admin console."""
    u = make_url(PGBOUNCER_URL)
    with psycopg.connect(
        host=u.host, port=u.port, dbname="pgbouncer", user=u.username, autocommit=True
    ) as admin:
        rows = admin.execute("SHOW POOLS").fetchall()
        columns = [c.name for c in admin.execute("SHOW POOLS").description or []]
    return [
        (r[columns.index("database")], r[columns.index("sv_active")] + r[columns.index("sv_idle")])
        for r in rows
    ]


async def run_workload(url: str, pgbouncer: bool) -> tuple[list[int], str]:
    env = {
        "DATABASE_URL": url,
        "DATABASE_POOL_SIZE": "10",
        "DATABASE_MAX_OVERFLOW": "10",
        "DATABASE_PGBOUNCER": "true" if pgbouncer else "false",
        # 40 clients on 20 connections: nobody is to be refused here, whatever the timing.
        "DATABASE_MAX_WAITING": "-1",
    }
    service = Service(env)
    try:
        service.start()
    except RuntimeError as exc:  # it could not even start
        service.stop()
        return [], str(exc)
    with service:
        queue: asyncio.Queue[int] = asyncio.Queue()
        for i in range(REQUESTS):
            queue.put_nowait(i)
        statuses: list[int] = []

        async def client_loop(client: httpx.AsyncClient) -> None:
            while not queue.empty():
                i = queue.get_nowait()
                # Two statement shapes, repeated: what a driver would prepare and cache.
                path = f"/users/{i}" if i % 2 else "/backend"
                try:
                    statuses.append((await client.get(path)).status_code)
                except httpx.HTTPError:
                    statuses.append(0)

        limits = httpx.Limits(max_connections=CLIENTS)
        async with httpx.AsyncClient(base_url=service.url, timeout=30, limits=limits) as client:
            await asyncio.gather(*(client_loop(client) for _ in range(CLIENTS)))
        return statuses, service.output()


@pytest.mark.parametrize("driver", ["asyncpg", "psycopg"])
async def test_pgbouncer_mode_serves_every_request(driver: str) -> None:
    url = PGBOUNCER_URL.replace("+asyncpg", f"+{driver}")
    statuses, output = await run_workload(url, pgbouncer=True)
    assert statuses == [200] * REQUESTS, output[-2000:]
    assert "prepared statement" not in output
    # Fewer server connections than client connections: PgBouncer's pool is 2 wide.
    assert all(servers <= 2 for database, servers in pgbouncer_pools() if database == "test")


@pytest.mark.parametrize("driver", ["asyncpg", "psycopg"])
async def test_without_pgbouncer_mode_prepared_statements_break(driver: str) -> None:
    url = PGBOUNCER_URL.replace("+asyncpg", f"+{driver}")
    statuses, output = await run_workload(url, pgbouncer=False)
    # The same workload fails without the setting: at start-up, or in requests.
    assert statuses.count(200) < REQUESTS
    assert "prepared statement" in output
