"""Round trips per request, counted at the server's side of a proxy: pooltender's default
``Session`` makes no more than the seed-style app (an ``async_sessionmaker`` dependency,
pool 20 + 10, no pre-ping), and its pre-ping still replaces a dead connection."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import psycopg
import pytest
from benchmarks.apps import metadata
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import create_async_engine

from pooltender import Database, DatabaseSettings
from tests.support.pg import PG_URL, proxied_url
from tests.support.proxy import Proxy
from tests.support.service import Service

pytestmark = pytest.mark.integration

REQUESTS = 50
PID = text("SELECT pg_backend_pid()")


def plain_url(proxy: Proxy) -> str:
    """The proxied URL without TLS, so the proxy can read the protocol."""
    return proxied_url(proxy) + "?ssl=disable"


@pytest.fixture(scope="module")
def bench_table() -> None:
    import asyncio

    async def create() -> None:
        engine = create_async_engine(PG_URL)
        async with engine.begin() as connection:
            await connection.run_sync(metadata.create_all)
            await connection.execute(
                text(
                    "INSERT INTO pooltender_bench_users (id, name) SELECT g, 'user ' || g "
                    "FROM generate_series(1, 20) g ON CONFLICT DO NOTHING"
                )
            )
        await engine.dispose()

    asyncio.run(create())


def per_request(proxy: Proxy, url: str, client: httpx.Client) -> float:
    for i in range(10):  # warm: connections open, statements prepared
        assert client.get(f"{url}/users/{i % 5 + 1}").status_code == 200
    proxy.reset_counts()
    for i in range(REQUESTS):
        assert client.get(f"{url}/users/{i % 5 + 1}").status_code == 200
    time.sleep(0.3)  # the seed-style session closes (ROLLBACK) after its response
    # A connection opened during the measurement adds its start-up's ReadyForQuery.
    return (proxy.round_trips - proxy.connections_accepted) / REQUESTS


def serve(app: str, url: str, env: dict[str, str]) -> Service:
    service = Service(
        {"BENCH_APP": app, "BENCH_DATABASE_URL": url, "DATABASE_URL": url, **env},
        app="benchmarks.apps:create_app",
        args=["--factory"],
        wait=False,
    ).start()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{service.url}/users/1", timeout=1).status_code == 200:
                return service
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    service.stop()
    raise RuntimeError(f"{app} did not answer:\n{service.output()}")


def test_a_session_request_makes_no_more_round_trips_than_the_seed_style_app(
    bench_table: None,
) -> None:
    figures: dict[str, float] = {}
    for app, env in (
        ("seed", {"BENCH_SEED_POOL_SIZE": "20", "BENCH_SEED_MAX_OVERFLOW": "10"}),
        ("pooltender", {}),  # the defaults: pre-ping on, monitor on
        ("readonly", {}),
    ):
        with (
            Proxy() as proxy,
            httpx.Client(timeout=10) as client,
            serve(app, plain_url(proxy), env) as service,
        ):
            figures[app] = per_request(proxy, service.url, client)
    # seed: BEGIN, SELECT, ROLLBACK (on older FastAPI its session closes after the
    # response, so the next request may open a second connection: a little more).
    # Session: BEGIN (the pre-ping's check), SELECT, COMMIT. ReadConnection: the
    # pre-ping's SELECT 1, the SELECT.
    assert figures["seed"] >= 3.0, figures
    assert figures["pooltender"] <= figures["seed"], figures
    assert figures["pooltender"] == 3.0, figures
    assert figures["readonly"] == 2.0, figures


async def test_the_begin_check_replaces_a_connection_killed_while_idle(
    admin_connection: psycopg.Connection,
) -> None:
    """The check is the transaction's BEGIN: a backend killed between two sessions
    costs the next session nothing, and it still makes three round trips."""
    with Proxy() as proxy:
        db = Database(DatabaseSettings(url=plain_url(proxy), pool_size=1, max_overflow=0))
        await db.start()
        try:
            async with db.session() as session:
                killed = await session.scalar(PID)
            admin_connection.execute("SELECT pg_terminate_backend(%s)", (killed,))
            time.sleep(0.2)  # noqa: ASYNC251 - the FATAL reaches the idle socket meanwhile
            proxy.reset_counts()
            async with db.session() as session:
                assert await session.scalar(PID) != killed
            # Replaced once: the failed BEGIN went nowhere (the backend is gone), and the
            # new connection (its start-up's own queries aside) served the session.
            assert proxy.connections_accepted == 1
            proxy.reset_counts()
            async with db.session() as session:
                await session.scalar(PID)
            assert (proxy.connections_accepted, proxy.round_trips) == (0, 3)
        finally:
            await db.stop()


async def test_a_read_only_option_after_the_checkout_still_holds() -> None:
    """``postgresql_readonly`` set on the session's connection after the early BEGIN:
    the transaction that runs is read only."""
    db = Database(DatabaseSettings(url=PG_URL, pool_size=1, max_overflow=0, warmup=1))
    await db.start()
    try:
        async with db.session() as session:  # the pooled connection is now "returned"
            await session.execute(text("SELECT 1"))
        with pytest.raises(DBAPIError, match="read-only transaction"):
            async with db.session() as session:
                await session.connection(execution_options={"postgresql_readonly": True})
                await session.execute(text("CREATE TEMP TABLE pooltender_ro_probe (x int)"))
        async with db.session() as session:
            assert await session.scalar(text("SHOW transaction_read_only")) == "off"
    finally:
        await db.stop()


@pytest.fixture
def admin_connection() -> Iterator[psycopg.Connection]:
    from tests.support.pg import admin_dsn

    with psycopg.connect(admin_dsn(), autocommit=True) as connection:
        yield connection
