"""The isolated PostgreSQL fixture: savepoints, rollback, one loop, apps, leak check."""

from __future__ import annotations

import asyncio
import os
import threading

import pytest
from fastapi import FastAPI, HTTPException
from sqlalchemy import Column, Integer, MetaData, String, Table, insert, select, text
from sqlalchemy.ext.asyncio import create_async_engine
from starlette.testclient import TestClient

from pooltender import Databases, DatabaseSettings, LifecycleError
from pooltender.fastapi import Connection, Session, install
from pooltender.testing import IsolatedDatabase, async_client, override_databases, pool_usage
from pooltender.testing.plugin import DEFAULT_POSTGRES_URL, URL_VARIABLE

pytestmark = pytest.mark.integration

URL = os.environ.get(URL_VARIABLE, DEFAULT_POSTGRES_URL)

metadata = MetaData()
notes = Table(
    "t6_notes", metadata, Column("id", Integer, primary_key=True), Column("body", String(50))
)


@pytest.fixture
def pooltender_metadata() -> MetaData:
    return metadata


def make_app() -> FastAPI:
    app = FastAPI()
    install(app, databases=lambda: pytest.fail("the app's own databases must not start"))

    @app.post("/notes/{body}")
    async def add(body: str, session: Session) -> dict[str, int]:
        result = await session.execute(insert(notes).values(body=body).returning(notes.c.id))
        note_id = result.scalar_one()
        await session.commit()  # the code under test may commit: only a savepoint is released
        return {"id": note_id}

    @app.post("/notes/{body}/fail")
    async def add_then_fail(body: str, connection: Connection) -> None:
        await connection.execute(insert(notes).values(body=body))
        raise HTTPException(409, "refused after the insert")

    @app.get("/notes")
    async def bodies(connection: Connection) -> list[str]:
        rows = await connection.execute(select(notes.c.body).order_by(notes.c.id))
        return list(rows.scalars())

    return app


async def table_exists(name: str) -> bool:
    engine = create_async_engine(URL)
    try:
        async with engine.connect() as connection:
            found = await connection.scalar(text("SELECT to_regclass(:name)"), {"name": name})
            return found is not None
    finally:
        await engine.dispose()


async def test_commits_inside_the_test_are_rolled_back_at_stop() -> None:
    db = IsolatedDatabase(DatabaseSettings(url=URL, warmup=0), metadata=metadata)
    await db.start()
    try:
        async with db.session() as session:
            await session.execute(insert(notes).values(body="kept until stop"))
            await session.commit()
        async with db.session() as session:
            assert (await session.scalars(select(notes.c.body))).all() == ["kept until stop"]
    finally:
        await db.stop()
    assert not await table_exists("t6_notes")  # the table, created inside, is gone too


async def test_a_failed_session_rolls_back_only_its_savepoint(
    postgres_database: IsolatedDatabase,
) -> None:
    async with postgres_database.session() as session:
        await session.execute(insert(notes).values(body="first"))

    async def insert_then_fail() -> None:
        async with postgres_database.session() as session:
            await session.execute(insert(notes).values(body="second"))
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        await insert_then_fail()
    async with postgres_database.connection() as connection:
        assert (await connection.scalars(select(notes.c.body))).all() == ["first"]


async def test_the_app_and_the_test_share_the_isolated_transaction(
    postgres_database: IsolatedDatabase,
) -> None:
    app = make_app()
    async with async_client(app, postgres_database) as client:
        with pool_usage(postgres_database) as usage:
            assert (await client.post("/notes/a")).status_code == 200
        assert usage.max_checked_out == 1
        assert (await client.post("/notes/b/fail")).status_code == 409
        assert (await client.get("/notes")).json() == ["a"]
    async with postgres_database.session() as session:
        assert (await session.scalars(select(notes.c.body))).all() == ["a"]


async def test_concurrent_requests_take_turns_on_the_one_connection(
    postgres_database: IsolatedDatabase,
) -> None:
    app = make_app()
    async with async_client(app, postgres_database) as client:
        with pool_usage(postgres_database) as usage:
            responses = await asyncio.gather(*(client.post(f"/notes/{i}") for i in range(8)))
        assert [r.status_code for r in responses] == [200] * 8
        assert (usage.checkouts, usage.max_checked_out) == (8, 1)
        assert sorted((await client.get("/notes")).json()) == [str(i) for i in range(8)]


async def test_another_event_loop_is_refused_with_a_clear_error(
    postgres_database: IsolatedDatabase,
) -> None:
    errors: list[BaseException] = []

    async def use() -> None:
        async with postgres_database.session() as session:
            await session.execute(text("SELECT 1"))

    def run() -> None:
        try:
            asyncio.run(use())
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    assert len(errors) == 1
    assert isinstance(errors[0], LifecycleError)
    assert "another event loop" in str(errors[0])


def test_testclient_gets_its_own_isolated_database_on_its_loop() -> None:
    app = make_app()

    def factory() -> Databases:
        return Databases(
            {"primary": IsolatedDatabase(DatabaseSettings(url=URL, warmup=0), metadata=metadata)}
        )

    with override_databases(app, factory), TestClient(app) as client:
        assert client.post("/notes/x").status_code == 200
        assert client.get("/notes").json() == ["x"]
    assert not asyncio.run(table_exists("t6_notes"))


LEAKY = """
import pytest
from sqlalchemy import text

kept = []

async def test_session_left_open(postgres_database):
    context = postgres_database.session()
    kept.append(context)
    session = await context.__aenter__()
    await session.execute(text("SELECT 1"))
"""


def test_a_session_left_open_fails_the_test(pytester: pytest.Pytester) -> None:
    pytester.makeini(
        "[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n"
    )
    pytester.makepyfile(test_leak=LEAKY)
    result = pytester.runpytest_subprocess()  # the entry point loads the plugin
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*database 'primary': connection #1 checked out at"
            " test_leak.py:9 in test_session_left_open*"
        ]
    )


TWO_DATABASES = """
from sqlalchemy import Column, Integer, MetaData, String, Table, insert, select, text

primary_tables = MetaData()
notes = Table("t6_two_notes", primary_tables, Column("id", Integer, primary_key=True))
analytics_tables = MetaData()
events = Table("t6_two_events", analytics_tables, Column("kind", String(20)))
kept = []

async def test_both_commit(make_postgres_database):
    primary = await make_postgres_database(metadata=primary_tables)
    analytics = await make_postgres_database("analytics", metadata=analytics_tables)
    async with primary.session() as session:
        await session.execute(insert(notes).values(id=1))
        await session.commit()
    async with analytics.session() as session:
        await session.execute(insert(events).values(kind="click"))
    async with analytics.connection() as connection:
        assert (await connection.scalars(select(events.c.kind))).all() == ["click"]
        # a transaction of its own: the primary's uncommitted table is not there
        assert await connection.scalar(text("SELECT to_regclass('t6_two_notes')")) is None

async def test_a_session_left_open_on_the_second(make_postgres_database):
    await make_postgres_database()
    analytics = await make_postgres_database("analytics")
    context = analytics.session()
    kept.append(context)
    session = await context.__aenter__()
    await session.execute(text("SELECT 1"))
"""


def test_two_isolated_databases_are_both_rolled_back_and_leak_checked(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeini(
        "[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n"
    )
    pytester.makepyfile(test_two=TWO_DATABASES)
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*the test left 1 connection checked out:*",
            "*database 'analytics': connection #1 checked out at"
            " test_two.py:27 in test_a_session_left_open_on_the_second*",
        ]
    )
    result.stdout.no_fnmatch_line("*database 'primary'*")
    assert not asyncio.run(table_exists("t6_two_notes"))
    assert not asyncio.run(table_exists("t6_two_events"))
