"""The FastAPI integration: lifespan composition, request sessions, the 503 answer."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI, HTTPException
from fastapi.testclient import TestClient
from sqlalchemy import text

from pooltender import Database, Databases, LifecycleError, PooltenderError
from pooltender.fastapi import Connection, Session, SyncSession, databases, install
from pooltender.testing import async_client, pool_usage
from tests.support.servers import serve


def make_app(tmp_path: Path, **env: str) -> FastAPI:
    environ = {"DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'app.sqlite'}", **env}
    events: list[str] = []

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, object]]:
        # the app's own lifespan runs with the pools already started
        async with databases(app).primary.session() as session:
            await session.execute(text("CREATE TABLE IF NOT EXISTS t (x INT)"))
        events.append("app started")
        yield {"from_app": "state"}
        events.append("app stopped")

    app = FastAPI(lifespan=lifespan)
    app.state.events = events
    install(app, lambda: Databases.from_env(environ, env_file=None))

    @app.post("/write")
    async def write(session: Session, fail: str = "") -> dict[str, str]:
        await session.execute(text("INSERT INTO t VALUES (1)"))
        if fail == "http":
            raise HTTPException(409, "conflict")
        if fail == "crash":
            raise RuntimeError("crash after the write")
        return {"ok": "yes"}

    @app.get("/count")
    async def count(session: Session) -> dict[str, int]:
        return {"n": int(await session.scalar(text("SELECT count(*) FROM t")) or 0)}

    @app.get("/core")
    async def core(conn: Connection) -> dict[str, int]:
        return {"n": int(await conn.scalar(text("SELECT count(*) FROM t")) or 0)}

    @app.get("/hold")
    async def hold(session: Session, seconds: float = 0.5) -> dict[str, float]:
        await session.execute(text("SELECT 1"))
        await asyncio.sleep(seconds)
        return {"held": seconds}

    return app


def test_lifespan_composes_with_the_apps_own(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    with TestClient(app) as client:
        assert app.state.events == ["app started"]
        assert client.get("/health/live").json() == {"status": "ok"}
        ready = client.get("/health/ready")
        assert ready.status_code == 200
        assert ready.json()["databases"] == {"primary": "ok"}
        assert databases(app).primary.state.value == "started"
    assert app.state.events == ["app started", "app stopped"]
    with pytest.raises(LifecycleError, match="install"):
        databases(app)


def test_install_twice_is_refused(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    with pytest.raises(PooltenderError, match="already called"):
        install(app)


@pytest.mark.parametrize("fail", ["http", "crash"])
async def test_a_route_that_writes_then_raises_leaves_nothing(
    tmp_path: Path, sqlite_database: Database, fail: str
) -> None:
    app = make_app(tmp_path)  # served from the plugin's in-memory database instead
    async with async_client(app, sqlite_database, raise_app_exceptions=False) as client:
        assert (await client.post("/write")).status_code == 200
        with pool_usage(sqlite_database) as usage:
            response = await client.post(f"/write?fail={fail}")
        assert response.status_code == (409 if fail == "http" else 500)
        assert (usage.checkouts, usage.checked_out) == (1, 0)  # taken, and returned
        assert (await client.get("/count")).json() == {"n": 1}
        assert (await client.get("/core")).json() == {"n": 1}
        assert sqlite_database.engine.pool.checkedout() == 0  # type: ignore[attr-defined]


def test_commit_happens_before_the_response(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    with TestClient(app) as client:
        client.post("/write")
        # a fresh connection sees the row as soon as the client has the answer
        assert client.get("/count").json() == {"n": 1}


async def test_overload_answers_503_with_retry_after(tmp_path: Path) -> None:
    app = make_app(
        tmp_path,
        DATABASE_POOL_SIZE="1",
        DATABASE_MAX_OVERFLOW="0",
        DATABASE_MAX_WAITING="1",
        DATABASE_RETRY_AFTER="3",
    )
    with serve(app) as base:
        async with httpx.AsyncClient(base_url=base, timeout=10) as client:
            answers = await asyncio.gather(*(client.get("/hold?seconds=0.5") for _ in range(5)))
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [200, 200, 503, 503, 503]
    refused = [a for a in answers if a.status_code == 503]
    for answer in refused:
        assert answer.headers["retry-after"] == "3"
        detail = answer.json()["detail"]
        assert detail["database"] == "primary"
        assert detail["reason"] == "overloaded"
        assert "overloaded" in detail["message"]


async def test_pool_timeout_answers_503(tmp_path: Path) -> None:
    app = make_app(
        tmp_path,
        DATABASE_POOL_SIZE="1",
        DATABASE_MAX_OVERFLOW="0",
        DATABASE_POOL_TIMEOUT="0.2",
        DATABASE_MAX_WAITING="10",
    )
    with serve(app) as base:
        async with httpx.AsyncClient(base_url=base, timeout=10) as client:
            answers = await asyncio.gather(
                client.get("/hold?seconds=1"), client.get("/hold?seconds=0")
            )
    assert [a.status_code for a in answers] == [200, 503]
    assert answers[1].json()["detail"]["reason"] == "timeout"
    assert answers[1].headers["retry-after"] == "1"


def test_sync_session_for_def_routes(tmp_path: Path) -> None:
    app = FastAPI()
    install(
        app,
        lambda: Databases.from_env(
            {"DATABASE_URL": f"sqlite:///{tmp_path / 's.db'}"}, env_file=None
        ),
    )

    @app.post("/sync")
    def sync_write(session: SyncSession, fail: bool = False) -> dict[str, int]:
        session.execute(text("CREATE TABLE IF NOT EXISTS t (x INT)"))
        session.execute(text("INSERT INTO t VALUES (1)"))
        if fail:
            raise HTTPException(400, "no")
        return {"n": int(session.scalar(text("SELECT count(*) FROM t")) or 0)}

    with TestClient(app) as client:
        assert client.post("/sync").json() == {"n": 1}
        assert client.post("/sync?fail=true").status_code == 400
        assert client.post("/sync").json() == {"n": 2}
