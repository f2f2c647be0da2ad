"""The compatibility seam on the real drivers: the asyncpg socket it reaches for is the
connection's socket, and the pre-ping really pings on every driver (a connection whose
server side was killed between two checkouts is replaced, on each of them)."""

from __future__ import annotations

import asyncio
import os

import psycopg
import pymysql
import pytest
from sqlalchemy import Engine, text
from sqlalchemy.ext.asyncio import AsyncEngine

from pooltender import DatabaseSettings, build_engine, compat
from pooltender.testing.plugin import DEFAULT_POSTGRES_URL, URL_VARIABLE

from ..conftest import MARIADB_URL

pytestmark = pytest.mark.integration

URL = os.environ.get(URL_VARIABLE, DEFAULT_POSTGRES_URL)


async def test_the_asyncpg_socket_is_the_connections_socket() -> None:
    engine = build_engine(DatabaseSettings(url=URL, pool_size=1, pre_ping_window=60))
    assert isinstance(engine, AsyncEngine)
    try:
        async with engine.connect() as connection:
            raw = await connection.get_raw_connection()
            driver = raw.driver_connection
            sock = compat.asyncpg_socket(driver)
            assert sock is not None
            server_port = await connection.scalar(text("SELECT inet_server_port()"))
            assert sock.getpeername()[1] == server_port
            compat.verify_asyncpg_connection(driver)  # no error on the installed asyncpg
    finally:
        await engine.dispose()


def _kill_postgres(pid: int) -> None:
    with psycopg.connect("host=127.0.0.1 port=5432 user=postgres dbname=test") as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))


def _kill_mariadb(thread_id: int) -> None:
    admin = pymysql.connect(host="127.0.0.1", port=3306, user="root", database="test")
    try:
        with admin.cursor() as cursor:
            cursor.execute(f"KILL {int(thread_id)}")
    finally:
        admin.close()


CASES = [
    pytest.param(URL, {}, "SELECT pg_backend_pid()", _kill_postgres, id="asyncpg"),
    pytest.param(
        URL.replace("+asyncpg", "+psycopg"), {}, "SELECT pg_backend_pid()", _kill_postgres,
        id="psycopg-async",
    ),
    pytest.param(
        URL.replace("+asyncpg", "+psycopg"), {"sync": True}, "SELECT pg_backend_pid()",
        _kill_postgres, id="psycopg-sync",
    ),
    pytest.param(MARIADB_URL, {}, "SELECT CONNECTION_ID()", _kill_mariadb, id="aiomysql"),
]  # fmt: skip


@pytest.mark.parametrize(("url", "extra", "who", "kill"), CASES)
async def test_the_pre_ping_replaces_a_connection_killed_between_checkouts(
    url: str, extra: dict[str, bool], who: str, kill: object
) -> None:
    engine = build_engine(DatabaseSettings(url=url, pool_size=1, max_overflow=0, **extra))
    query = text(who)
    try:
        if isinstance(engine, AsyncEngine):
            async with engine.connect() as connection:
                first = await connection.scalar(query)
            await asyncio.to_thread(kill, first)  # type: ignore[arg-type]
            async with engine.connect() as connection:
                second = await connection.scalar(query)
        else:
            assert isinstance(engine, Engine)
            with engine.connect() as sync_connection:
                first = sync_connection.scalar(query)
            kill(first)  # type: ignore[operator]
            with engine.connect() as sync_connection:
                second = sync_connection.scalar(query)
        assert second != first  # the pre-ping found the dead one and opened another
    finally:
        if isinstance(engine, AsyncEngine):
            await engine.dispose()
        else:
            engine.dispose()
