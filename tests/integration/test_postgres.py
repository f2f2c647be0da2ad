"""The foundation against the real PostgreSQL: fail fast, rollback, timeouts, drivers."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.engine import make_url

from pooltender import Database, Databases, DatabaseSettings, StatementTimeout
from pooltender.fastapi import Session, databases, install
from pooltender_demo import create_app
from tests.support.servers import serve

SECRET = "pw-not-for-your-eyes"
REPO = Path(__file__).resolve().parents[2]


async def test_fail_fast_acceptance(postgres_url: str) -> None:
    """Pool 2 + overflow 0, 2 may wait, 20 clients holding 1 s: 4 served, 16 refused at once."""
    app = FastAPI()
    env = {
        "DATABASE_URL": postgres_url,
        "DATABASE_POOL_SIZE": "2",
        "DATABASE_MAX_OVERFLOW": "0",
        "DATABASE_MAX_WAITING": "2",
    }
    install(app, lambda: Databases.from_env(env, env_file=None))

    @app.get("/hold")
    async def hold(session: Session) -> dict[str, int]:
        await session.execute(text("SELECT pg_sleep(1)"))
        return {"ok": 1}

    async def timed(client: httpx.AsyncClient) -> tuple[httpx.Response, float]:
        start = time.perf_counter()
        response = await client.get("/hold")
        return response, time.perf_counter() - start

    with serve(app) as base:
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:
            await client.get("/health/live")  # connection set up outside the timed burst
            results = await asyncio.gather(*(timed(client) for _ in range(20)))
        pool = databases(app).primary.engine.pool
        assert pool.checkedout() == 0  # type: ignore[attr-defined]
    statuses = [r.status_code for r, _ in results]
    assert statuses.count(200) == 4
    assert statuses.count(503) == 16
    rejections = [elapsed for r, elapsed in results if r.status_code == 503]
    for response, _ in results:
        if response.status_code == 503:
            assert response.headers["retry-after"] == "1"
            assert response.json()["detail"]["reason"] == "overloaded"
    print(f"rejections: slowest {max(rejections) * 1000:.1f} ms")
    assert max(rejections) < 0.25


async def test_write_then_raise_leaves_nothing(postgres_url: str) -> None:
    db = Database(DatabaseSettings(url=postgres_url))
    await db.start()
    try:
        async with db.session() as session:
            await session.execute(text("DROP TABLE IF EXISTS t2_rollback"))
            await session.execute(text("CREATE TABLE t2_rollback (x int)"))
        with pytest.raises(ValueError, match="after the write"):
            async with db.session() as session:
                await session.execute(text("INSERT INTO t2_rollback VALUES (1)"))
                raise ValueError("after the write")
        async with db.session() as session:
            assert await session.scalar(text("SELECT count(*) FROM t2_rollback")) == 0
            await session.execute(text("DROP TABLE t2_rollback"))
    finally:
        await db.stop()


@pytest.mark.parametrize("driver", ["asyncpg", "psycopg"])
async def test_statement_timeout_is_enforced_by_the_server(postgres_url: str, driver: str) -> None:
    url = make_url(postgres_url).set(drivername=f"postgresql+{driver}")
    db = Database(DatabaseSettings(url=url, statement_timeout=0.2))
    await db.start()
    try:
        async with db.session() as session:
            assert await session.scalar(text("SHOW statement_timeout")) == "200ms"
        with pytest.raises(StatementTimeout, match="statement timeout") as cancelled:
            async with db.session() as session:
                await session.execute(text("SELECT pg_sleep(2)"))
        assert "DATABASE_STATEMENT_TIMEOUT=0.2s" in str(cancelled.value)
        assert "statement timeout" in str(cancelled.value.__cause__)  # the driver's error
        assert db.engine.pool.checkedout() == 0  # type: ignore[attr-defined]
    finally:
        await db.stop()


async def test_sync_psycopg_engine(postgres_url: str) -> None:
    url = make_url(postgres_url).set(drivername="postgresql+psycopg")
    db = Database(DatabaseSettings(url=url, sync=True, pool_size=2))
    await db.start()
    try:
        with db.sync_session() as session:
            assert session.scalar(text("SELECT 41 + 1")) == 42
        assert db.sync_engine.pool.checkedin() == 2  # type: ignore[attr-defined]
    finally:
        await db.stop()


async def test_pool_is_warmed_with_real_server_connections(postgres_url: str) -> None:
    db = Database(DatabaseSettings(url=postgres_url, pool_size=4))
    await db.start()
    try:
        assert db.engine.pool.checkedin() == 4  # type: ignore[attr-defined]
    finally:
        await db.stop()


def test_demo_runs_on_postgresql(postgres_url: str) -> None:
    from fastapi.testclient import TestClient

    with TestClient(create_app({"DATABASE_URL": postgres_url})) as client:
        assert len(client.get("/users", params={"limit": 3}).json()) == 3
        report = client.get("/reports/slow", params={"seconds": 0.05})
        assert report.status_code == 200
        assert client.get("/analytics/summary").json()["seeded"] >= 50


def _start_smallest(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, **env, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "uvicorn", "tests.apps.smallest:app", "--port", "0"],
        env=full,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_negative_pool_size_fails_at_start_naming_the_variable(postgres_url: str) -> None:
    done = _start_smallest({"DATABASE_URL": postgres_url, "DATABASE_POOL_SIZE": "-1"})
    assert done.returncode != 0
    assert "DATABASE_POOL_SIZE: Input should be greater than or equal to 0 (got '-1')" in (
        done.stderr
    )


def test_unreachable_server_names_the_host_never_the_password(closed_port: int) -> None:
    url = f"postgresql+asyncpg://app:{SECRET}@127.0.0.1:{closed_port}/app"
    done = _start_smallest({"DATABASE_URL": url, "DATABASE_CONNECT_RETRIES": "1"})
    output = done.stdout + done.stderr
    assert done.returncode != 0
    assert f"127.0.0.1:{closed_port}/app is not reachable" in output
    assert SECRET not in output
