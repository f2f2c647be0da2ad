"""Database lifecycle and the session contract, on SQLite (no server needed)."""

from __future__ import annotations

import asyncio
import gc
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
from sqlalchemy import text

from pooltender import (
    Database,
    Databases,
    DatabaseSettings,
    LifecycleError,
    PoolOverloaded,
    StartupError,
)

SECRET = "hunter2-secret"


def file_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}"


async def test_no_io_before_start_and_no_restart_after_stop(tmp_path: Path) -> None:
    db = Database(DatabaseSettings(url=file_url(tmp_path)))
    assert not (tmp_path / "db.sqlite").exists()  # the constructor touched nothing
    with pytest.raises(LifecycleError, match="'primary' is new, not started"):
        _ = db.engine
    await db.start()
    assert (tmp_path / "db.sqlite").exists()
    await db.stop()
    with pytest.raises(LifecycleError, match="stopped"):
        _ = db.engine
    with pytest.raises(LifecycleError, match="stopped"):
        async with db.session():
            pass
    with pytest.raises(LifecycleError, match="build a new Database"):
        await db.start()


async def test_start_warms_the_pool(tmp_path: Path) -> None:
    db = Database(DatabaseSettings(url=file_url(tmp_path), pool_size=3))
    await db.start()
    assert db.engine.pool.checkedin() == 3  # type: ignore[attr-defined]
    await db.stop()
    cold = Database(DatabaseSettings(url=file_url(tmp_path), pool_size=3, warmup=0))
    await cold.start()
    assert cold.engine.pool.checkedin() == 1  # type: ignore[attr-defined]  # the verification
    await cold.stop()


async def test_file_sqlite_gets_wal(tmp_path: Path) -> None:
    db = Database(DatabaseSettings(url=file_url(tmp_path)))
    await db.start()
    async with db.session() as session:
        assert await session.scalar(text("PRAGMA journal_mode")) == "wal"
        assert await session.scalar(text("PRAGMA busy_timeout")) == 5000
    await db.stop()


async def test_in_memory_database_is_one_shared_connection() -> None:
    db = Database(DatabaseSettings(url="sqlite+aiosqlite://"))
    await db.start()
    async with db.session() as session:
        await session.execute(text("CREATE TABLE t (x INT)"))
        await session.execute(text("INSERT INTO t VALUES (1)"))
    async with db.session() as session:  # another session sees the same database
        assert await session.scalar(text("SELECT count(*) FROM t")) == 1
    await db.stop()


async def test_session_commits_on_success_and_rolls_back_on_error(tmp_path: Path) -> None:
    db = Database(DatabaseSettings(url=file_url(tmp_path)))
    await db.start()
    async with db.session() as session:
        await session.execute(text("CREATE TABLE t (x INT)"))
        await session.execute(text("INSERT INTO t VALUES (1)"))
    with pytest.raises(ZeroDivisionError):
        async with db.session() as session:
            await session.execute(text("INSERT INTO t VALUES (2)"))
            _ = 1 / 0
    async with db.session() as session:
        assert (await session.scalars(text("SELECT x FROM t"))).all() == [1]
    assert db.engine.pool.checkedout() == 0  # type: ignore[attr-defined]
    await db.stop()


async def test_cancelled_session_returns_its_connection(tmp_path: Path) -> None:
    db = Database(DatabaseSettings(url=file_url(tmp_path)))
    await db.start()
    started = asyncio.Event()

    async def slow() -> None:
        async with db.session() as session:
            await session.execute(text("SELECT 1"))
            started.set()
            await asyncio.sleep(30)

    task = asyncio.create_task(slow())
    await started.wait()
    assert db.engine.pool.checkedout() == 1  # type: ignore[attr-defined]
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gc.collect()
    assert db.engine.pool.checkedout() == 0  # type: ignore[attr-defined]
    assert not [w for w in caught if "non-checked-in connection" in str(w.message)]
    await db.stop()


@pytest.mark.parametrize("method", ["session", "connection", "read_connection"])
async def test_a_cancel_landing_inside_the_clean_up_still_returns_the_connection(
    tmp_path: Path, method: str
) -> None:
    """The clean-up runs inline; a native cancel that interrupts it mid-way must not
    leak the connection (SQLAlchemy invalidates it and returns its slot)."""
    db = Database(DatabaseSettings(url=file_url(tmp_path)))
    await db.start()
    returned = asyncio.Event()

    async def work() -> None:
        async with getattr(db, method)() as conn:
            await conn.execute(text("SELECT 1"))
            # delivered at the clean-up's first suspension (commit, rollback or reset)
            asyncio.get_running_loop().call_soon(task.cancel)
        returned.set()

    task = asyncio.create_task(work())
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not returned.is_set()  # the cancel did land inside the clean-up
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gc.collect()
    assert db.engine.pool.checkedout() == 0  # type: ignore[attr-defined]
    assert not [w for w in caught if "non-checked-in connection" in str(w.message)]
    async with getattr(db, method)() as conn:  # the pool still serves
        assert (await conn.execute(text("SELECT 2"))).scalar() == 2
    await db.stop()


async def test_an_overloaded_pool_refuses_a_session_before_its_work_starts(
    tmp_path: Path,
) -> None:
    db = Database(
        DatabaseSettings(url=file_url(tmp_path), pool_size=1, max_overflow=0, max_waiting=0)
    )
    await db.start()
    ran = False
    async with db.session() as holder:
        await holder.execute(text("SELECT 1"))  # the pool's only connection is now in use
        with pytest.raises(PoolOverloaded, match="overloaded") as refused:
            async with db.session():
                ran = True
        assert refused.value.retry_after == db.settings.retry_after
    assert not ran
    assert db.wait_queue.rejected == 1
    async with db.session() as session:  # served again once the connection is back
        assert (await session.execute(text("SELECT 2"))).scalar() == 2
    await db.stop()


async def test_connection_is_a_transaction(tmp_path: Path) -> None:
    db = Database(DatabaseSettings(url=file_url(tmp_path)))
    await db.start()
    async with db.connection() as conn:
        await conn.execute(text("CREATE TABLE t (x INT)"))
    with pytest.raises(RuntimeError):
        async with db.connection() as conn:
            await conn.execute(text("INSERT INTO t VALUES (1)"))
            raise RuntimeError("boom")
    async with db.connection() as conn:
        assert await conn.scalar(text("SELECT count(*) FROM t")) == 0
    await db.stop()


async def test_sync_database_serves_sync_sessions(tmp_path: Path) -> None:
    db = Database(DatabaseSettings(url=f"sqlite:///{tmp_path / 'sync.sqlite'}"))
    await db.start()
    with pytest.raises(LifecycleError, match="sync driver"):
        _ = db.engine
    with db.sync_session() as session:
        session.execute(text("CREATE TABLE t (x INT)"))
        session.execute(text("INSERT INTO t VALUES (1)"))
    with pytest.raises(KeyError), db.sync_session() as session:
        session.execute(text("INSERT INTO t VALUES (2)"))
        raise KeyError("boom")
    with db.sync_session() as session:
        assert session.scalar(text("SELECT count(*) FROM t")) == 1
    await db.ping()
    await db.stop()


async def test_unreachable_database_fails_start_naming_host_not_password(closed_port: int) -> None:
    url = f"postgresql+asyncpg://app:{SECRET}@127.0.0.1:{closed_port}/app"
    db = Database(DatabaseSettings(url=url, connect_retries=1, connect_timeout=1))
    with pytest.raises(StartupError) as info:
        await db.start()
    message = str(info.value)
    assert f"database 'primary' at 127.0.0.1:{closed_port}/app is not reachable" in message
    assert "ConnectionRefusedError" in message
    assert SECRET not in message
    assert info.value.__cause__ is None and info.value.__suppress_context__


async def test_databases_start_together_and_stop_all_when_one_fails(
    tmp_path: Path, closed_port: int
) -> None:
    dbs = Databases.from_env(
        {
            "DATABASE_URL": file_url(tmp_path),
            "DATABASE_BROKEN_URL": f"postgresql+asyncpg://app@127.0.0.1:{closed_port}/x",
            "DATABASE_BROKEN_CONNECT_RETRIES": "0",
        },
        env_file=None,
    )
    with pytest.raises(StartupError, match="'broken'"):
        await dbs.start()
    with pytest.raises(LifecycleError):
        _ = dbs.primary.engine
    with pytest.raises(KeyError, match="set DATABASE_NOPE_URL"):
        _ = dbs["nope"]


def test_engines_are_not_created_at_import() -> None:
    code = (
        "import sqlalchemy.ext.asyncio as e, sqlalchemy as s\n"
        "calls=[]\n"
        "e.create_async_engine=lambda *a,**k: calls.append(a)\n"
        "s.create_engine=lambda *a,**k: calls.append(a)\n"
        "import pooltender, pooltender.fastapi, pooltender_demo\n"
        "pooltender_demo.create_app({'DATABASE_URL': 'sqlite+aiosqlite://'})\n"
        "assert calls == [], calls\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
