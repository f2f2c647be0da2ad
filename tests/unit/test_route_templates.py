"""Routes of routers included in routers are named by their full path templates.

FastAPI 0.16x keeps included routers nested (a route knows only its path within its
router); 0.121 flattens them. Both legs of the suite run this: the stats, /metrics, the
held-after-response log line and ``pooltender top`` all say ``/api/notes/...``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from fastapi import APIRouter, Depends, FastAPI
from fastapi.responses import StreamingResponse
from rich.console import Console
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from pooltender import Databases, PooltenderSettings, Snapshot
from pooltender.cli.top import render
from pooltender.fastapi import Session, databases, install
from pooltender.testing import async_client


def nested_app(tmp_path: Path, release: asyncio.Event, holding: asyncio.Event) -> FastAPI:
    notes = APIRouter()

    @notes.get("/{note_id}")
    async def read_note(note_id: int, session: Session) -> dict[str, int]:
        return {"id": int(await session.scalar(text("SELECT :n").bindparams(n=note_id)) or 0)}

    @notes.get("/hold/{n}")
    async def hold(n: int, session: Session) -> dict[str, int]:
        await session.execute(text("SELECT 1"))
        holding.set()
        await release.wait()
        return {"n": n}

    async def own_session() -> AsyncIterator[AsyncSession]:
        # an app's own get_db: FastAPI's default scope closes it after the response
        async with databases(app).primary.session() as session:
            yield session

    @notes.get("/stream/all")
    async def stream(session: AsyncSession = Depends(own_session)) -> StreamingResponse:
        await session.execute(text("SELECT 1"))

        async def rows() -> AsyncIterator[bytes]:
            for _ in range(2):
                yield b"x"
                await asyncio.sleep(0.05)

        return StreamingResponse(rows())

    api = APIRouter()
    api.include_router(notes, prefix="/notes")
    app = FastAPI()
    app.include_router(api, prefix="/api")
    environ = {"DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'r.db'}"}
    install(
        app,
        lambda: Databases.from_env(environ, env_file=None),
        pooltender_settings=PooltenderSettings(loop_block_threshold=0),
    )
    return app


async def test_stats_metrics_and_top_name_the_full_template(tmp_path: Path) -> None:
    release, holding = asyncio.Event(), asyncio.Event()
    app = nested_app(tmp_path, release, holding)
    async with async_client(app, base_url="http://127.0.0.1") as client:
        assert (await client.get("/api/notes/7")).json() == {"id": 7}
        held = asyncio.create_task(client.get("/api/notes/hold/3"))
        await holding.wait()
        document = (await client.get("/debug/pool-stats")).json()
        release.set()
        assert (await held).json() == {"n": 3}
        metrics = (await client.get("/metrics")).text
    primary = document["databases"]["primary"]
    assert [h["route"] for h in primary["held"]] == ["GET /api/notes/hold/{n}"]
    assert "GET /api/notes/{note_id}" in {r["route"] for r in primary["routes"]}
    assert 'route="GET /api/notes/{note_id}"' in metrics
    assert 'route="GET /api/notes/hold/{n}"' in metrics
    assert "/api/notes/7" not in metrics and "/api/notes/hold/3" not in metrics
    console = Console(width=200, record=True)
    console.print(render(Snapshot.from_json(document), None, "test"))
    frame = console.export_text()
    assert "GET /api/notes/{note_id}" in frame
    assert "GET /api/notes/hold/{n}" in frame


async def test_the_held_after_response_log_names_the_full_template(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="pooltender")
    app = nested_app(tmp_path, asyncio.Event(), asyncio.Event())
    async with async_client(app) as client:
        assert (await client.get("/api/notes/stream/all")).content == b"xx"
        deadline = asyncio.get_running_loop().time() + 5
        while not any("after the response started" in r.getMessage() for r in caplog.records):
            assert asyncio.get_running_loop().time() < deadline, "no held-after-response log"
            await asyncio.sleep(0.02)
    [record] = [r for r in caplog.records if "after the response started" in r.getMessage()]
    assert "GET /api/notes/stream/all" in record.getMessage()
