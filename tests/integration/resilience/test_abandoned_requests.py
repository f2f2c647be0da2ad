"""Abandoned requests free their connection at once: a client that disconnects while
its route waits on PostgreSQL gets its statement cancelled on the server, its
transaction rolled back and its connection back in the pool (real uvicorn, real
PostgreSQL, a proxy to tell this service's backends from everyone else's)."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Iterator

import httpx
import psycopg
import pytest

from tests.support.pg import backends_behind, proxied_url
from tests.support.proxy import Proxy
from tests.support.service import Service

pytestmark = pytest.mark.integration

CLIENTS = 200


async def abandon(port: int, request: bytes, clients: int, after: float) -> None:
    """``clients`` connections send ``request``, wait ``after`` seconds, and close."""

    async def one() -> None:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(request)
        await writer.drain()
        await asyncio.sleep(after)
        writer.close()
        with contextlib.suppress(OSError):  # the server may reset it first
            await writer.wait_closed()

    await asyncio.gather(*(one() for _ in range(clients)))


def sleeping(admin: psycopg.Connection, proxy: Proxy) -> list[tuple[int, str]]:
    """This service's backends still running ``pg_sleep``."""
    pids = backends_behind(admin, proxy)
    if not pids:
        return []
    rows = admin.execute(
        "SELECT pid, state FROM pg_stat_activity WHERE pid = ANY(%s)"
        " AND state = 'active' AND query LIKE '%%pg_sleep%%'",
        (pids,),
    ).fetchall()
    return [(pid, state) for pid, state in rows]


@pytest.fixture
def writes(admin: psycopg.Connection) -> Iterator[str]:
    table = f"t5_writes_{uuid.uuid4().hex[:8]}"
    admin.execute(f"CREATE TABLE {table} (key text NOT NULL)")
    yield table
    admin.execute(f"DROP TABLE {table}")


@pytest.fixture
def service(proxy: Proxy, writes: str) -> Iterator[Service]:
    env = {"DATABASE_URL": proxied_url(proxy), "T5_WRITES": writes}
    with Service(env, app="tests.support.write_app:app") as service:
        yield service


def rows(admin: psycopg.Connection, table: str, key: str) -> int:
    count = admin.execute(f"SELECT count(*) FROM {table} WHERE key = %s", (key,)).fetchone()
    assert count is not None
    return int(count[0])


def test_abandoned_requests_leave_no_statement_running_and_no_connection_held(
    service: Service, proxy: Proxy, admin: psycopg.Connection
) -> None:
    request = b"GET /sleep?seconds=1 HTTP/1.1\r\nHost: t\r\n\r\n"
    with httpx.Client(base_url=service.url, timeout=10) as client:
        assert client.get("/sleep", params={"seconds": 0}).status_code == 200
        asyncio.run(abandon(service.port, request, CLIENTS, 0.1))
        time.sleep(0.3)
        assert sleeping(admin, proxy) == []
        assert client.get("/_pool").json()["checked_out"] == 0
        # The pool serves again at once.
        assert client.get("/sleep", params={"seconds": 0}).status_code == 200


def test_an_abandoned_write_leaves_nothing_half_written(
    service: Service, writes: str, admin: psycopg.Connection
) -> None:
    key = uuid.uuid4().hex
    request = f"POST /write-slowly?key={key}&seconds=1 HTTP/1.1\r\nHost: t\r\n"
    request += "Content-Length: 0\r\n\r\n"
    asyncio.run(abandon(service.port, request.encode(), 20, 0.2))
    time.sleep(0.3)
    assert rows(admin, writes, key) == 0
    with httpx.Client(base_url=service.url, timeout=10) as client:
        assert client.get("/_pool").json()["checked_out"] == 0


def test_a_route_that_opts_out_finishes_its_write(
    service: Service, writes: str, admin: psycopg.Connection
) -> None:
    key = uuid.uuid4().hex
    request = f"POST /write-slowly-to-the-end?key={key}&seconds=0.5 HTTP/1.1\r\nHost: t\r\n"
    request += "Content-Length: 0\r\n\r\n"
    asyncio.run(abandon(service.port, request.encode(), 1, 0.1))
    deadline = time.monotonic() + 5
    while rows(admin, writes, key) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert rows(admin, writes, key) == 2  # both rows: the route ran to its commit
