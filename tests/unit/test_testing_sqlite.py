"""The pytest plugin's SQLite fixture, pool_usage and checkout sites (no server needed)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import sysconfig
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Any

import pytest
from fastapi import FastAPI
from sqlalchemy import Column, Integer, MetaData, String, Table, insert, select, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine
from starlette.testclient import TestClient

from pooltender import Database, Databases, DatabaseSettings
from pooltender.fastapi import Connection, Session, databases, install, session_for
from pooltender.testing import (
    async_client,
    checkout_site,
    override_databases,
    pool_usage,
    tracker_for,
)
from pooltender.testing.plugin import DatabaseFactory

metadata = MetaData()
items = Table(
    "t6_items", metadata, Column("id", Integer, primary_key=True), Column("name", String(50))
)

analytics_metadata = MetaData()
events = Table(
    "t6_events",
    analytics_metadata,
    Column("id", Integer, primary_key=True),
    Column("kind", String(50)),
)


@pytest.fixture
def pooltender_metadata() -> MetaData:
    return metadata


def make_app(*, create_tables: bool = False) -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if create_tables:
            async with databases(app).primary.engine.begin() as connection:
                await connection.run_sync(metadata.create_all)
        yield

    app = FastAPI(lifespan=lifespan)
    install(app, databases=lambda: pytest.fail("the app's own databases must not start"))

    @app.post("/items/{name}")
    async def add(name: str, session: Session) -> dict[str, int]:
        result = await session.execute(insert(items).values(name=name).returning(items.c.id))
        return {"id": result.scalar_one()}

    @app.get("/items")
    async def names(connection: Connection) -> list[str]:
        rows = await connection.execute(select(items.c.name).order_by(items.c.id))
        return list(rows.scalars())

    return app


async def test_sqlite_database_has_the_metadata_created(sqlite_database: Database) -> None:
    async with sqlite_database.session() as session:
        await session.execute(insert(items).values(name="a"))
    async with sqlite_database.session() as session:
        assert (await session.execute(select(items.c.name))).scalars().all() == ["a"]


async def test_pool_usage_counts_checkouts_and_the_peak(sqlite_database: Database) -> None:
    with pool_usage(sqlite_database) as usage:
        for _ in range(3):
            async with sqlite_database.session() as session:
                await session.execute(text("SELECT 1"))
    assert (usage.checkouts, usage.max_checked_out, usage.checked_out) == (3, 1, 0)


async def test_pool_usage_sees_concurrent_checkouts(tmp_path: Path) -> None:
    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}")
    try:
        with pool_usage(engine) as usage:
            async with engine.connect() as first, engine.connect() as second:
                await first.execute(text("SELECT 1"))
                await second.execute(text("SELECT 1"))
                assert usage.checked_out == 0  # filled in at the block's end
                assert tracker_for(engine).checked_out == 2
        assert (usage.checkouts, usage.max_checked_out, usage.checked_out) == (2, 2, 0)
    finally:
        await engine.dispose()


async def test_the_checkout_site_is_the_callers_line(sqlite_database: Database) -> None:
    tracker = tracker_for(sqlite_database)
    async with sqlite_database.session() as session:
        line = sys._getframe().f_lineno + 1
        await session.execute(text("SELECT 1"))  # the checkout happens here
        (held,) = tracker.held
        assert held.site.endswith(
            f"test_testing_sqlite.py:{line} in test_the_checkout_site_is_the_callers_line"
        )
    assert tracker.held == []


async def test_async_client_serves_the_app_from_the_test_database(
    sqlite_database: Database,
) -> None:
    app = make_app()
    async with async_client(app, sqlite_database) as client:
        with pool_usage(sqlite_database) as usage:
            assert (await client.post("/items/x")).json() == {"id": 1}
        assert usage.max_checked_out == 1
        assert (await client.get("/items")).json() == ["x"]
    async with sqlite_database.session() as session:  # the test sees what the app wrote
        assert (await session.execute(select(items.c.name))).scalars().all() == ["x"]


async def test_override_is_undone_after_the_block(sqlite_database: Database) -> None:
    app = make_app()
    with override_databases(app, sqlite_database):
        assert app.state.pooltender.primary is sqlite_database
    assert not hasattr(app.state, "pooltender")


def test_testclient_with_a_factory_builds_databases_on_its_own_loop() -> None:
    app = make_app(create_tables=True)

    def factory() -> Databases:
        return Databases({"primary": Database(DatabaseSettings(url="sqlite+aiosqlite://"))})

    with override_databases(app, factory), TestClient(app) as client:
        assert client.post("/items/y").json() == {"id": 1}
        assert client.get("/items").json() == ["y"]


def test_override_refuses_an_app_without_install() -> None:
    with pytest.raises(Exception, match=r"install\(app\)"), override_databases(FastAPI(), {}):
        pass


async def test_concurrent_users_of_the_one_sqlite_connection_take_turns(
    sqlite_database: Database,
) -> None:
    async def add(name: str) -> None:
        async with sqlite_database.session() as session:
            await session.execute(insert(items).values(name=name))
            await asyncio.sleep(0)

    with pool_usage(sqlite_database) as usage:
        await asyncio.gather(*(add(str(i)) for i in range(5)))
    assert usage.max_checked_out == 1
    assert usage.checkouts == 5


async def test_read_connection_autocommits(sqlite_database: Database) -> None:
    async with sqlite_database.read_connection() as connection:
        await connection.execute(insert(items).values(name="autocommitted"))
    async with sqlite_database.connection() as connection:
        assert (await connection.scalars(select(items.c.name))).all() == ["autocommitted"]


async def test_the_factory_gives_named_databases_each_with_its_own_tables(
    make_sqlite_database: DatabaseFactory[Database],
) -> None:
    primary = await make_sqlite_database()  # the pooltender_metadata fixture's tables
    analytics = await make_sqlite_database("analytics", metadata=analytics_metadata)
    assert (primary.name, analytics.name) == ("primary", "analytics")
    async with analytics.session() as session:
        await session.execute(insert(events).values(kind="click"))
    async with primary.session() as session:
        assert (await session.scalars(select(items.c.name))).all() == []
        with pytest.raises(OperationalError, match="no such table: t6_events"):
            await session.execute(select(events.c.kind))
    async with analytics.session() as session:
        assert (await session.scalars(select(events.c.kind))).all() == ["click"]
        with pytest.raises(OperationalError, match="no such table: t6_items"):
            await session.execute(select(items.c.name))


async def test_an_app_serves_each_name_from_its_test_database(
    make_sqlite_database: DatabaseFactory[Database],
) -> None:
    primary = await make_sqlite_database()
    analytics = await make_sqlite_database("analytics", metadata=analytics_metadata)
    app = make_app()

    @app.post("/both/{name}")
    async def both(
        name: str,
        session: Session,
        analytics_session: Annotated[AsyncSession, session_for("analytics")],
    ) -> None:
        await session.execute(insert(items).values(name=name))
        await analytics_session.execute(insert(events).values(kind=f"added {name}"))

    async with async_client(app, {"primary": primary, "analytics": analytics}) as client:
        with pool_usage(primary) as on_primary, pool_usage(analytics) as on_analytics:
            assert (await client.post("/both/x")).status_code == 200
    assert (on_primary.checkouts, on_analytics.checkouts) == (1, 1)
    async with analytics.session() as session:
        assert (await session.scalars(select(events.c.kind))).all() == ["added x"]
    async with primary.session() as session:
        assert (await session.scalars(select(items.c.name))).all() == ["x"]


def test_an_installed_service_is_user_code_for_checkout_sites() -> None:
    # A service installed into site-packages (a Docker image's usual layout): its
    # routes are where connections are taken, not library frames to walk past.
    routes = os.path.join(sysconfig.get_paths()["purelib"], "shop", "routes.py")
    namespace: dict[str, Any] = {"checkout_site": checkout_site}
    exec(compile("def handler():\n    return checkout_site()\n", routes, "exec"), namespace)
    relative = os.path.relpath(routes)  # sites are shown relative to the working directory
    shown = routes if relative.startswith("..") else relative
    assert namespace["handler"]() == f"{shown}:2 in handler"


async def test_an_unhandled_error_is_raised_unless_the_500_answer_is_wanted(
    sqlite_database: Database,
) -> None:
    app = make_app()

    @app.get("/crash")
    async def crash() -> None:
        raise RuntimeError("crash in the route")

    async with async_client(app, sqlite_database) as client:
        with pytest.raises(RuntimeError, match="crash in the route"):
            await client.get("/crash")
    async with async_client(app, sqlite_database, raise_app_exceptions=False) as client:
        assert (await client.get("/crash")).status_code == 500
