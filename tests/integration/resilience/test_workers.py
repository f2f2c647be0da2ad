"""Many workers: one pool per process, built after the fork; engines built before it
are disposed in the child, never shared."""

from __future__ import annotations

import asyncio
import os
from collections import defaultdict

import httpx
import psycopg
import pytest
from sqlalchemy import text

from pooltender import DatabaseSettings, build_engine
from tests.support.pg import PG_URL
from tests.support.service import Service

pytestmark = pytest.mark.integration

WORKERS = 4


async def test_uvicorn_workers_each_have_their_own_backends(admin: psycopg.Connection) -> None:
    env = {"DATABASE_URL": PG_URL, "DATABASE_POOL_SIZE": "2", "DATABASE_MAX_OVERFLOW": "0"}
    with Service(env, workers=WORKERS, start_timeout=40) as service:
        backends: dict[int, set[int]] = defaultdict(set)
        for _ in range(40):
            # New client connections each round: the kernel spreads them over the workers
            # (the others may still be starting).
            async with httpx.AsyncClient(base_url=service.url, timeout=10) as client:
                answers = await asyncio.gather(*(client.get("/backend") for _ in range(8)))
            for answer in answers:
                if answer.status_code != 200:  # 503: that worker's pool was full
                    continue
                body = answer.json()
                backends[body["worker"]].add(body["backend"])
            if len(backends) == WORKERS:
                break
            await asyncio.sleep(0.25)
        assert len(backends) >= 2, dict(backends)
        seen: set[int] = set()
        for worker, pids in backends.items():
            assert not pids & seen, f"worker {worker} shares a backend"
            assert len(pids) <= 2  # its own pool of 2
            seen |= pids
        active = {
            r[0]
            for r in admin.execute(
                "SELECT pid FROM pg_stat_activity WHERE pid = ANY(%s)", (sorted(seen),)
            )
        }
        assert active == seen  # every worker's backends are live server sessions


def test_engine_built_before_fork_is_not_shared_with_the_child() -> None:
    engine = build_engine(
        DatabaseSettings(url=PG_URL.replace("+asyncpg", "+psycopg"), sync=True, pool_size=1)
    )
    assert not hasattr(engine, "sync_engine")
    with engine.connect() as connection:
        parent_pid = connection.execute(text("SELECT pg_backend_pid()")).scalar_one()
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the child
        try:
            with engine.connect() as connection:
                pid = connection.execute(text("SELECT pg_backend_pid()")).scalar_one()
            os.write(write, str(pid).encode())
        finally:
            os._exit(0)
    os.close(write)
    _, status = os.waitpid(child, 0)
    child_pid = int(os.read(read, 64).decode() or 0)
    os.close(read)
    assert os.waitstatus_to_exitcode(status) == 0
    assert child_pid not in (0, parent_pid)  # the child opened its own connection
    with engine.connect() as connection:  # and left the parent's one open and in sync
        assert connection.execute(text("SELECT pg_backend_pid()")).scalar_one() == parent_pid
    engine.dispose()
