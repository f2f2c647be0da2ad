"""Bring your own engine on every driver the suite has servers for: an engine the app
built with asyncpg, psycopg (async and sync), aiomysql or pymysql is gated (its own
sessionmaker refused with PoolOverloaded when full) and monitored, then given back."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.orm import sessionmaker

from pooltender import Databases, PoolOverloaded
from pooltender.pool import GatedPool

DRIVERS = [
    ("postgres", "postgresql+asyncpg"),
    ("postgres", "postgresql+psycopg"),
    ("postgres", "postgresql+psycopg:sync"),
    ("mariadb", "mysql+aiomysql"),
    ("mariadb", "mysql+pymysql:sync"),
]


@pytest.fixture(params=DRIVERS, ids=[d for _, d in DRIVERS])
def engine(
    request: pytest.FixtureRequest, postgres_url: str, mariadb_url: str
) -> Iterator[AsyncEngine | Engine]:
    server, driver = request.param
    drivername, _, mode = driver.partition(":")
    url = make_url(postgres_url if server == "postgres" else mariadb_url).set(drivername=drivername)
    options = {"pool_size": 1, "max_overflow": 0, "pool_timeout": 5}
    built = create_engine(url, **options) if mode else create_async_engine(url, **options)
    yield built
    if isinstance(built, Engine):
        built.dispose()
    else:
        asyncio.run(built.dispose())


async def test_the_apps_own_engine_is_gated_and_given_back(engine: AsyncEngine | Engine) -> None:
    sync_engine = engine.sync_engine if isinstance(engine, AsyncEngine) else engine
    original = sync_engine.pool
    environ = {"DATABASE_MAX_WAITING": "0"}
    dbs = Databases.from_engines({"primary": engine}, environ=environ, env_file=None)
    await dbs.start()
    try:
        assert isinstance(sync_engine.pool, GatedPool)
        if isinstance(engine, AsyncEngine):
            maker = async_sessionmaker(engine)
            async with maker.begin() as session:
                assert await session.scalar(text("SELECT 1")) == 1
                with pytest.raises(PoolOverloaded):
                    async with maker.begin() as second:
                        await second.execute(text("SELECT 1"))
        else:
            sync_maker = sessionmaker(engine)

            def use() -> None:
                with sync_maker.begin() as session:
                    assert session.scalar(text("SELECT 1")) == 1
                    with pytest.raises(PoolOverloaded), sync_maker.begin() as second:
                        second.execute(text("SELECT 1"))

            await asyncio.to_thread(use)
        stats = dbs.primary.stats()
        assert (stats.rejected, stats.checked_out, stats.max) == (1, 0, 1)
        assert stats.checkouts >= 1
    finally:
        await dbs.stop()
    assert sync_engine.pool is original
