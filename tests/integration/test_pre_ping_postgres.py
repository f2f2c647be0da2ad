"""A pooled PostgreSQL connection killed while idle is replaced by the pre-ping."""

from __future__ import annotations

import os
import time

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from pooltender import Database, DatabaseSettings
from pooltender.testing.plugin import DEFAULT_POSTGRES_URL, URL_VARIABLE

pytestmark = pytest.mark.integration

URL = os.environ.get(URL_VARIABLE, DEFAULT_POSTGRES_URL)
PID = text("SELECT pg_backend_pid()")


@pytest.mark.parametrize("driver", ["asyncpg", "psycopg"])
@pytest.mark.parametrize("window", [0.0, 60.0])
async def test_a_connection_killed_while_idle_is_replaced(driver: str, window: float) -> None:
    """With or without the pre-ping window: a killed backend's FATAL error waits on
    the idle connection's socket, so even a connection returned a moment ago is pinged
    (and replaced) instead of failing the next request."""
    url = URL.replace("+asyncpg", f"+{driver}")
    settings = DatabaseSettings(
        url=url, pool_size=1, max_overflow=0, warmup=1, pre_ping_window=window
    )
    db = Database(settings)
    await db.start()
    try:
        async with db.connection() as connection:
            killed = await connection.scalar(PID)
        admin = create_async_engine(URL)
        try:
            async with admin.connect() as connection:
                await connection.execute(text("SELECT pg_terminate_backend(:p)"), {"p": killed})
        finally:
            await admin.dispose()
        # Blocking on purpose: the backend exits and its FATAL error reaches the socket
        # while the event loop cannot read it (asyncpg would otherwise see the close).
        time.sleep(0.2)  # noqa: ASYNC251
        async with db.connection() as connection:
            assert await connection.scalar(PID) != killed
    finally:
        await db.stop()


async def test_the_pre_ping_is_one_simple_query(monkeypatch: pytest.MonkeyPatch) -> None:
    """asyncpg's pre-ping is ``SELECT 1`` over the simple protocol: no BEGIN/ROLLBACK
    around it (SQLAlchemy's own ping costs three round trips), no prepared statement."""
    import asyncpg

    db = Database(
        DatabaseSettings(url=URL, pool_size=1, max_overflow=0, warmup=1, pre_ping_window=0)
    )
    await db.start()
    sent: list[str] = []
    try:
        for name in ("execute", "fetch", "fetchrow", "fetchval", "prepare"):
            original = getattr(asyncpg.Connection, name)

            def record(self: object, query: str, *args: object, _o=original, **kw: object):  # type: ignore[no-untyped-def]
                sent.append(query)
                return _o(self, query, *args, **kw)

            monkeypatch.setattr(asyncpg.Connection, name, record)
        async with db.read_connection() as connection:
            assert await connection.scalar(text("SELECT 41 + 1")) == 42
        assert sent[0] == "SELECT 1"
        assert not [q for q in sent if q.strip().upper() in ("BEGIN;", "ROLLBACK;", ";")]
    finally:
        monkeypatch.undo()
        await db.stop()


async def test_inside_the_window_a_quiet_connection_is_not_pinged(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import asyncpg

    settings = DatabaseSettings(url=URL, pool_size=1, max_overflow=0, warmup=1, pre_ping_window=60)
    db = Database(settings)
    await db.start()
    sent: list[str] = []
    original = asyncpg.Connection.execute

    async def execute(self: asyncpg.Connection, query: str, *args: object, **kw: object) -> str:
        sent.append(query)
        return await original(self, query, *args, **kw)  # type: ignore[arg-type]

    try:
        monkeypatch.setattr(asyncpg.Connection, "execute", execute)
        for _ in range(3):
            async with db.read_connection() as connection:
                assert await connection.scalar(text("SELECT 2")) == 2
        assert "SELECT 1" not in sent
    finally:
        monkeypatch.undo()
        await db.stop()
