"""Bring your own engine: an engine the app built is gated, monitored and given back.

On aiosqlite / pysqlite files (no server); the PostgreSQL side, under uvicorn, is
``tests/integration/test_adopt_app.py``.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import psycopg
import pytest
from fastapi import APIRouter, Depends, FastAPI
from sqlalchemy import create_engine, event, text
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import AsyncAdaptedQueuePool, NullPool, QueuePool

from pooltender import (
    ConfigurationError,
    Database,
    Databases,
    LifecycleError,
    PoolOverloaded,
    PooltenderSettings,
    PoolTimeout,
    compat,
)
from pooltender.adopt import Adoption, adopted_settings
from pooltender.failover import FailoverDetector
from pooltender.fastapi import SessionMaker, databases, install
from pooltender.pool import GatedAsyncQueuePool, GatedQueuePool, WaitQueue
from pooltender.recycle import EXPIRES, JITTER

QUIET = PooltenderSettings(loop_block_threshold=0)


def app_engine(tmp_path: Path, **pool: object) -> AsyncEngine:
    """The app's own engine, as an app writes it (pooltender knows nothing of it yet)."""
    options = {"pool_size": 2, "max_overflow": 0, "pool_timeout": 5, **pool}
    return create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'app.db'}", **options)


async def test_the_engines_own_pool_options_stand_and_are_shown(tmp_path: Path) -> None:
    engine = app_engine(tmp_path, pool_recycle=600, pool_pre_ping=True)
    connected: list[str] = []
    # a listener of the app's own, registered before pooltender saw the engine
    event.listen(engine.sync_engine, "connect", lambda *args: connected.append("connect"))
    original = engine.sync_engine.pool
    dbs = Databases.from_engines({"primary": engine}, environ={}, env_file=None)
    await dbs.start()
    try:
        pool = engine.sync_engine.pool
        assert isinstance(pool, GatedAsyncQueuePool) and pool is not original
        assert connected  # the app's listener came along to pooltender's pool
        # the engine's pool_pre_ping=True: pooltender's own pre-ping does it
        assert compat.queue_pool_options(pool)["pre_ping"] is False
        assert dbs.primary.settings.pool_pre_ping is True
        assert dbs.primary.engine is engine  # the app's own engine object, not a copy
        stats = dbs.primary.stats()
        assert (stats.pool_size, stats.max, stats.max_waiting) == (2, 2, 2)
        assert pool.timeout() == 5
        assert dbs.primary.settings.pool_recycle == 600
        assert stats.driver == "sqlite+aiosqlite"
    finally:
        await dbs.stop()
    # given back: the app's own pool again, and the engine still works
    assert engine.sync_engine.pool is original
    async with engine.connect() as connection:
        assert await connection.scalar(text("SELECT 1")) == 1
    await engine.dispose()


async def test_an_option_set_in_the_environment_overrides_the_engines(tmp_path: Path) -> None:
    engine = app_engine(tmp_path)
    environ = {"DATABASE_POOL_SIZE": "3", "DATABASE_POOL_TIMEOUT": "2.5"}
    dbs = Databases.from_engines({"primary": engine}, environ=environ, env_file=None)
    await dbs.start()
    try:
        pool = engine.sync_engine.pool
        assert (pool.size(), pool.timeout()) == (3, 2.5)
        stats = dbs.primary.stats()
        assert (stats.pool_size, stats.max) == (3, 3)  # max_overflow: the engine's own 0
    finally:
        await dbs.stop()
        await engine.dispose()


async def test_the_apps_own_sessionmaker_is_bounded_and_monitored(tmp_path: Path) -> None:
    engine = app_engine(tmp_path)
    maker = async_sessionmaker(engine)  # bound before pooltender ever saw the engine
    dbs = Databases.from_engines(
        {"primary": engine},
        environ={"DATABASE_MAX_WAITING": "0"},
        env_file=None,
        pooltender_settings=QUIET,
    )
    await dbs.start()
    try:
        async with maker.begin() as first, maker.begin() as second:
            await first.execute(text("SELECT 1"))
            await second.execute(text("SELECT 1"))
            held = dbs.primary.stats().held
            assert len(held) == 2
            assert all("test_adopt.py" in h.site for h in held)  # the app's own line
            with pytest.raises(PoolOverloaded, match="overloaded"):
                async with maker.begin() as third:
                    await third.execute(text("SELECT 1"))
        stats = dbs.primary.stats()
        assert (stats.rejected, stats.checked_out) == (1, 0)
        assert stats.checkouts >= 2
    finally:
        await dbs.stop()
        await engine.dispose()


async def test_a_wait_on_the_apps_own_session_is_bounded_by_its_pool_timeout(
    tmp_path: Path,
) -> None:
    engine = app_engine(tmp_path, pool_size=1, pool_timeout=0.2)
    maker = async_sessionmaker(engine)
    dbs = Databases.from_engines({"primary": engine}, environ={}, env_file=None)
    await dbs.start()
    try:
        async with engine.connect() as held:
            await held.execute(text("SELECT 1"))
            with pytest.raises(PoolTimeout, match=r"no connection free within 0\.20s"):
                async with maker.begin() as session:
                    await session.execute(text("SELECT 1"))
        assert dbs.primary.stats().timeouts == 1
    finally:
        await dbs.stop()
        await engine.dispose()


async def test_a_sync_engine_is_adopted_too(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'sync.db'}", pool_size=1, max_overflow=0)
    assert type(engine.pool) is QueuePool
    db = Database.adopt(engine, environ={}, env_file=None)
    await db.start()
    try:
        assert isinstance(engine.pool, GatedQueuePool)
        with db.sync_session() as session:
            assert session.scalar(text("SELECT 1")) == 1
        assert db.stats().checkouts >= 1
    finally:
        await db.stop()
    assert type(engine.pool) is QueuePool
    engine.dispose()


async def test_one_engine_is_adopted_by_one_running_database_at_a_time(tmp_path: Path) -> None:
    engine = app_engine(tmp_path)
    first = Database.adopt(engine, environ={}, env_file=None, pooltender_settings=QUIET)
    await first.start()
    try:
        second = Database.adopt(engine, environ={}, env_file=None)
        with pytest.raises(LifecycleError, match="already adopted by the running database"):
            await second.start()
    finally:
        await first.stop()
    # after a stop it can be adopted again (a second TestClient, a second lifespan)
    first_count = first.stats().checkouts
    again = Database.adopt(engine, environ={}, env_file=None, pooltender_settings=QUIET)
    await again.start()
    try:
        assert isinstance(engine.sync_engine.pool, GatedAsyncQueuePool)
        before = again.stats().checkouts
        async with async_sessionmaker(engine).begin() as session:
            await session.execute(text("SELECT 1"))
        assert again.stats().checkouts == before + 1
        assert first.stats().checkouts == first_count  # the stopped one no longer listens
    finally:
        await again.stop()
        await engine.dispose()


async def test_a_pool_without_a_bound_is_monitored_not_gated(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'n.db'}", poolclass=NullPool)
    db = Database.adopt(engine, environ={}, env_file=None)
    await db.start()
    try:
        assert isinstance(engine.sync_engine.pool, NullPool)
        assert "is no QueuePool: monitored, but its waiting is not bounded" in caplog.text
        async with db.session() as session:
            await session.execute(text("SELECT 1"))
        assert db.stats().checkouts >= 1
    finally:
        await db.stop()
        await engine.dispose()


def test_a_connection_option_in_the_environment_is_named_as_not_applying(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    engine = app_engine(tmp_path)
    environ = {"DATABASE_STATEMENT_TIMEOUT": "5", "DATABASE_URL": "sqlite+aiosqlite:///x.db"}
    db = Database.adopt(engine, environ=environ, env_file=None)
    assert db.settings.statement_timeout is None
    assert db.settings.url == engine.url
    assert "DATABASE_STATEMENT_TIMEOUT does not apply to an engine the app built" in caplog.text
    assert "DATABASE_URL is set, but database 'primary' uses the engine the app built" in (
        caplog.text
    )


@pytest.mark.parametrize(
    ("name", "url", "message"),
    [
        ("Bad Name", "sqlite+aiosqlite://", "engines: 'Bad Name' is not a database name"),
        ("primary", "postgresql+pg8000://u:s3cret@h/d", "engines: database 'primary': unknown"),
    ],
)
def test_a_bad_name_or_driver_is_a_one_line_error(name: str, url: str, message: str) -> None:
    # a dialect pooltender does not know (its DB-API module stood in for by psycopg)
    engine = create_async_engine(url) if "sqlite" in url else create_engine(url, module=psycopg)
    with pytest.raises(ConfigurationError) as raised:
        Databases.from_engines({name: engine}, environ={}, env_file=None)
    assert str(raised.value).startswith(message)
    assert "s3cret" not in str(raised.value) and "\n" not in str(raised.value)


def test_not_an_engine_is_a_one_line_error() -> None:
    with pytest.raises(ConfigurationError, match="engines: expected a SQLAlchemy Engine or"):
        Databases.from_engines({"primary": "postgresql://x"}, environ={}, env_file=None)  # type: ignore[dict-item]


# -- install(app, engines=...) ------------------------------------------------------------


def adopted_app(engine: AsyncEngine) -> FastAPI:
    """An app as it was written without pooltender: its own get_db, routers in routers;
    plus the one line that adopts it."""
    maker = async_sessionmaker(engine, expire_on_commit=False)

    async def get_db() -> AsyncIterator[AsyncSession]:
        async with maker() as session:
            yield session

    notes = APIRouter()

    @notes.get("/{note_id}")
    async def read_note(note_id: int, db: AsyncSession = Depends(get_db)) -> dict[str, int]:
        return {"id": int(await db.scalar(text("SELECT :n").bindparams(n=note_id)) or 0)}

    api = APIRouter()
    api.include_router(notes, prefix="/notes")
    app = FastAPI()
    app.include_router(api, prefix="/api")
    install(app, engines={"primary": engine}, pooltender_settings=QUIET)
    return app


@contextlib.asynccontextmanager
async def running(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            yield client


async def test_install_with_engines_answers_503_for_the_apps_own_get_db(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_MAX_WAITING", "0")
    monkeypatch.chdir(tmp_path)  # no .env of the repository's
    engine = app_engine(tmp_path, pool_size=1)
    app = adopted_app(engine)
    async with running(app) as client:
        assert (await client.get("/api/notes/7")).json() == {"id": 7}
        stats = (await client.get("/debug/pool-stats")).json()["databases"]["primary"]
        routes = {r["route"] for r in stats["routes"]}
        assert routes == {"GET /api/notes/{note_id}", "(no request)"}  # + the start-up check
        assert stats["pool_size"] == 1
        metrics = (await client.get("/metrics")).text
        assert 'route="GET /api/notes/{note_id}"' in metrics
        # every connection held, and no room to wait (DATABASE_MAX_WAITING=0)
        async with engine.connect() as held:
            await held.execute(text("SELECT 1"))
            refused = await client.get("/api/notes/8")
        assert refused.status_code == 503
        assert refused.headers["retry-after"] == "1"
        assert refused.json()["detail"]["reason"] == "overloaded"
        assert (await client.get("/health/ready")).status_code == 200
        assert (await client.get("/health/live")).status_code == 200
        page = await client.get("/debug/pool")
        assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert type(engine.sync_engine.pool) is AsyncAdaptedQueuePool
    await engine.dispose()


# -- level 2: pooltender's engine, the app's use cases on its sessionmaker ------------------


class NoteCounter:
    """A use case as apps write them: it opens its own transactions."""

    def __init__(self, maker: async_sessionmaker[AsyncSession]) -> None:
        self.maker = maker

    async def add(self) -> int:
        async with self.maker.begin() as session:
            await session.execute(text("CREATE TABLE IF NOT EXISTS c (x INT)"))
            await session.execute(text("INSERT INTO c VALUES (1)"))
        async with self.maker() as session:
            return int(await session.scalar(text("SELECT count(*) FROM c")) or 0)


async def test_the_sessionmaker_dependency_serves_use_cases_and_is_gated(
    tmp_path: Path,
) -> None:
    async def get_session_maker(maker: SessionMaker) -> async_sessionmaker[AsyncSession]:
        return maker  # the app's own dependency, now handing out pooltender's factory

    started: list[NoteCounter] = []

    def counter(
        maker: async_sessionmaker[AsyncSession] = Depends(get_session_maker),
    ) -> NoteCounter:
        started.append(NoteCounter(maker))
        return started[-1]

    app = FastAPI()
    environ = {
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'm.db'}",
        "DATABASE_POOL_SIZE": "1",
        "DATABASE_MAX_OVERFLOW": "0",
        "DATABASE_MAX_WAITING": "0",
    }
    install(app, lambda: Databases.from_env(environ, env_file=None), pooltender_settings=QUIET)

    @app.post("/count")
    async def count(use_case: NoteCounter = Depends(counter)) -> dict[str, int]:
        return {"n": await use_case.add()}

    async with running(app) as client:
        assert (await client.post("/count")).json() == {"n": 1}
        assert (await client.post("/count")).json() == {"n": 2}
        primary = databases(app).primary
        async with primary.engine.connect() as held:  # the pool's one connection
            await held.execute(text("SELECT 1"))
            refused = await client.post("/count")
        assert refused.status_code == 503
        assert refused.headers["retry-after"] == "1"
        assert primary.stats().rejected == 1
        assert len(started) == 2  # refused before its use case started
        assert (await client.post("/count")).json() == {"n": 3}


async def test_an_engines_pool_recycle_is_pooltenders_jitter_and_pace(tmp_path: Path) -> None:
    engine = app_engine(tmp_path, pool_recycle=600)
    dbs = Databases.from_engines({"primary": engine}, environ={}, env_file=None)
    await dbs.start()
    try:
        pool = engine.sync_engine.pool
        assert compat.queue_pool_options(pool)["recycle"] == -1  # SQLAlchemy's own is off
        opened = time.monotonic()
        async with engine.connect() as connection:
            record = (await connection.get_raw_connection())._connection_record
            assert record is not None
            expires = record.info[EXPIRES] - opened
        assert 600 * (1 - JITTER) - 1 <= expires <= 600, expires
    finally:
        await dbs.stop()
    # given back: the app's own pool with its own recycle
    assert compat.queue_pool_options(engine.sync_engine.pool)["recycle"] == 600
    await engine.dispose()


@pytest.mark.parametrize(
    ("own", "environ", "recycled"),
    [
        ({}, {}, False),  # create_async_engine's default: no recycle, none added
        ({}, {"DATABASE_POOL_RECYCLE": "900"}, True),
        ({"pool_recycle": 600}, {"DATABASE_POOL_RECYCLE": "-1"}, False),
    ],
)
async def test_recycling_follows_the_engines_pool_recycle_or_the_environment(
    tmp_path: Path, own: dict[str, object], environ: dict[str, str], recycled: bool
) -> None:
    engine = app_engine(tmp_path, **own)
    dbs = Databases.from_engines({"primary": engine}, environ=environ, env_file=None)
    await dbs.start()
    try:
        async with engine.connect() as connection:
            record = (await connection.get_raw_connection())._connection_record
            assert record is not None
            assert (EXPIRES in record.info) is recycled
        assert compat.queue_pool_options(engine.sync_engine.pool)["recycle"] == -1
    finally:
        await dbs.stop()
        await engine.dispose()


@pytest.mark.parametrize("gated", [True, False])
async def test_failover_detection_listens_to_an_adopted_engine_until_it_is_given_back(
    gated: bool,
) -> None:
    # A PostgreSQL engine never connected: attach and release only add and remove listeners.
    pool = {} if gated else {"poolclass": NullPool}
    engine = create_async_engine("postgresql+asyncpg://app@127.0.0.1:1/app", **pool)
    sync_engine = engine.sync_engine
    for _ in range(2):  # a second adoption after the first was given back
        settings = adopted_settings(engine, environ={}, env_file=None)
        detector = FailoverDetector(settings)
        adoption = Adoption(engine)
        adoption.attach(
            settings,
            wait_queue=WaitQueue("primary", limit=1, retry_after=1),
            on_connect_time=None,
            on_wait=None,
            failover=detector,
        )
        assert event.contains(sync_engine, "handle_error", detector._on_error)
        assert event.contains(sync_engine, "connect", detector._on_connect)
        assert event.contains(sync_engine, "checkout", detector._on_checkout)
        await adoption.release()
        for name, listener in detector._listeners():
            assert not event.contains(sync_engine, name, listener), name
        assert not event.contains(sync_engine.pool, "connect", detector._on_connect)
    await engine.dispose()


def test_an_adopted_engine_declared_read_only_or_opted_out_gets_no_detection() -> None:
    engine = create_async_engine("postgresql+asyncpg://app@127.0.0.1:1/app")
    assert FailoverDetector(adopted_settings(engine, environ={}, env_file=None)).enabled
    for environ in ({"DATABASE_FAILOVER_DETECTION": "false"}, {"DATABASE_READ_ONLY": "true"}):
        settings = adopted_settings(engine, environ=environ, env_file=None)
        assert not FailoverDetector(settings).enabled, environ
