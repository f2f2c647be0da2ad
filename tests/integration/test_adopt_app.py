"""An existing service adopts pooltender in two lines (tests/apps/notes_service).

On a database of its own on the real PostgreSQL: its alembic migrations run with its own
engine, its own test suite passes unchanged, and under uvicorn an overload answers 503
with Retry-After while /debug/pool-stats names its routes by their full prefixed paths.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

from pooltender import Databases
from tests.support.pg import admin_dsn, fresh_database
from tests.support.service import ROOT, Service

SERVICE = Path(__file__).resolve().parents[1] / "apps" / "notes_service"


@pytest.fixture
def notes_url(postgres_url: str) -> Iterator[str]:
    """A new database of this test's own (dropped after it), as an asyncpg URL."""
    asyncpg_url = make_url(postgres_url).set(drivername="postgresql+asyncpg")
    with fresh_database(asyncpg_url.render_as_string(hide_password=False), "adopt") as url:
        yield url


def app_env(url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "POOLTENDER_"))}
    env.pop("PYTEST_ADDOPTS", None)
    env.update(
        NOTES_DATABASE_URL=url,
        PYTHONPATH=os.pathsep.join([str(SERVICE), str(ROOT / "src")]),
        **extra,
    )
    return env


def run(command: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, cwd=SERVICE, env=env, capture_output=True, text=True, timeout=120, check=False
    )


def upgrade(url: str) -> None:
    done = run([sys.executable, "-m", "alembic", "upgrade", "head"], app_env(url))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Running upgrade  -> 0001, notes table" in done.stderr


def test_the_adoption_is_two_lines_and_none_in_the_use_cases() -> None:
    lines = [
        (path.relative_to(SERVICE).as_posix(), line.strip())
        for path in sorted(SERVICE.rglob("*.py"))
        for line in path.read_text().splitlines()
    ]
    marked = [(path, line) for path, line in lines if "# adopting pooltender" in line]
    imports = [
        (path, line)
        for path, line in lines
        if line.startswith(("from pooltender", "import pooltender"))
    ]
    assert [path for path, _ in marked] == ["notes/main.py", "notes/main.py"]
    assert imports == marked[:1]  # the only import of pooltender anywhere in the app
    assert marked[1][1].startswith('install(app, engines={"primary": engine})')
    assert "pooltender" not in (SERVICE / "notes" / "usecases.py").read_text()


def test_alembic_upgrade_head_with_the_apps_own_engine(notes_url: str) -> None:
    upgrade(notes_url)
    dsn = admin_dsn(notes_url)
    with psycopg.connect(dsn) as connection:
        version = connection.execute("SELECT version_num FROM alembic_version").fetchone()
        columns = connection.execute(
            "SELECT column_name FROM information_schema.columns"
            " WHERE table_name = 'notes' ORDER BY ordinal_position"
        ).fetchall()
    assert version == ("0001",)
    assert [c[0] for c in columns] == ["id", "title", "body"]


def test_the_apps_own_tests_pass_unchanged(notes_url: str) -> None:
    upgrade(notes_url)
    done = run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"], app_env(notes_url))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "5 passed" in done.stdout


async def overload(url: str) -> tuple[Counter[int], httpx.Response, dict[str, object]]:
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        created = await client.post("/api/notes", json={"title": "one"})
        assert created.status_code == 201
        assert (await client.get(f"/api/notes/{created.json()['id']}")).status_code == 200
        assert (await client.get("/api/status/ready")).json() == {"status": "ok"}
        # 4 connections at most (the app's own pool_size=5, max_overflow=5 overridden by
        # the environment), 2 may wait: of 12 slow reports at once, some must be refused
        responses = await asyncio.gather(
            *(client.get("/api/notes/report", params={"seconds": 1}) for _ in range(12))
        )
        refused = next(r for r in responses if r.status_code == 503)
        stats = (await client.get("/debug/pool-stats")).json()["databases"]["primary"]
        return Counter(r.status_code for r in responses), refused, stats


def test_under_overload_it_answers_503_and_names_its_full_routes(notes_url: str) -> None:
    upgrade(notes_url)
    env = app_env(
        notes_url, DATABASE_POOL_SIZE="2", DATABASE_MAX_OVERFLOW="2", DATABASE_MAX_WAITING="2"
    )
    env["PYTHONPATH"] += os.pathsep + str(ROOT)  # the server launcher (tests.support)
    with Service(env, app="notes.main:app") as service:
        counts, refused, stats = asyncio.run(overload(service.url))
        metrics = httpx.get(service.url + "/metrics").text
    assert set(counts) == {200, 503}, counts
    assert counts[200] >= 4
    assert refused.headers["retry-after"] == "1"
    assert refused.json()["detail"]["reason"] == "overloaded"
    assert (stats["pool_size"], stats["max"], stats["max_waiting"]) == (2, 4, 2)
    assert stats["rejected"] == counts[503]
    routes = {route["route"] for route in stats["routes"]}  # type: ignore[attr-defined]
    assert {
        "POST /api/notes",
        "GET /api/notes/{note_id}",
        "GET /api/notes/report",
        "GET /api/status/ready",
    } <= routes, routes
    assert 'route="GET /api/notes/report"' in metrics


async def test_the_engines_pre_ping_replaces_a_terminated_connection(notes_url: str) -> None:
    """The app's pool_pre_ping=True, done by pooltender's pre-ping on the adopted engine:
    a backend terminated while its connection sat idle costs no request."""
    engine = create_async_engine(notes_url, pool_size=1, max_overflow=0, pool_pre_ping=True)
    maker = async_sessionmaker(engine)
    dbs = Databases.from_engines({"primary": engine}, environ={}, env_file=None)
    await dbs.start()
    try:
        async with maker() as session:
            pid = await session.scalar(text("SELECT pg_backend_pid()"))
        with psycopg.connect(admin_dsn(notes_url), autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))  # this test's own
        async with maker() as session:
            assert await session.scalar(text("SELECT pg_backend_pid()")) != pid
        assert dbs.primary.stats().connections_invalidated >= 1
    finally:
        await dbs.stop()
        await engine.dispose()
