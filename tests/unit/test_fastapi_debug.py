from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated

import httpx
import pytest
from fastapi import Depends, FastAPI, Request
from fastapi.responses import StreamingResponse
from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from pooltender import Database, Databases, DatabaseSettings, PooltenderSettings
from pooltender.fastapi import Session, SyncSession, databases, install
from pooltender.metrics import METRICS

HERE = os.path.relpath(__file__)
LOOPBACK = ("127.0.0.1", 40000)
CONTRACT_KEYS = (
    "name",
    "url",
    "driver",
    "pool_size",
    "checked_out",
    "overflow",
    "total",
    "available",
    "max",
    "waiting",
    "max_waiting",
    "timeouts",
    "rejected",
    "leaks_suspected",
    "checkouts",
    "connections_created",
    "connections_invalidated",
    "wait_time",
    "use_time",
    "connect_time",
    "routes",
    "held",
    "loop_blocked",
)
held_open: list[AsyncConnection] = []


async def request_session(request: Request) -> AsyncIterator[AsyncSession]:
    async with databases(request.app).primary.session() as session:
        yield session


def make_app(tmp_path: Path, *, token: str | None = None, **kw: object) -> FastAPI:
    app = FastAPI()
    dbs = Databases(
        {
            "primary": Database(
                DatabaseSettings(url=f"sqlite+aiosqlite:///{tmp_path}/t3api.db"),
                pooltender_settings=PooltenderSettings(loop_block_threshold=0),
            )
        }
    )
    install(app, dbs, pooltender_settings=PooltenderSettings(debug_token=token), **kw)  # type: ignore[arg-type]

    @app.get("/users/{user_id}")
    async def get_user(user_id: int, session: Session) -> dict[str, int]:
        return {"id": (await session.execute(text("SELECT :v"), {"v": user_id})).scalar_one()}

    @app.get("/hold/{n}")
    async def hold(n: int, request: Request) -> dict[str, str]:
        held_open.append(await databases(request.app).primary.engine.connect())
        return {"status": "held"}

    @app.get("/stream")
    async def stream(
        session: Annotated[AsyncSession, Depends(request_session)],
    ) -> StreamingResponse:
        await session.execute(text("SELECT 1"))

        async def body() -> AsyncIterator[bytes]:
            for _ in range(2):
                yield b"x"
                await asyncio.sleep(0.05)

        return StreamingResponse(body())

    return app


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[FastAPI]:
    app = make_app(tmp_path)
    async with app.router.lifespan_context(app):
        yield app
        for connection in held_open:
            await connection.close()
        held_open.clear()


def client(app: FastAPI, address: tuple[str, int] = LOOPBACK) -> httpx.AsyncClient:
    """A client at ``address`` asking for the service by a loopback name, as a direct
    request on the machine does (the loopback rule also checks ``Host``)."""
    transport = httpx.ASGITransport(app=app, client=address)
    return httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000")


async def test_pool_stats_follow_the_contract(running: FastAPI) -> None:
    async with client(running) as c:
        assert (await c.get("/users/7")).json() == {"id": 7}
        assert (await c.get("/hold/1")).status_code == 200
        response = await c.get("/debug/pool-stats")
    assert response.status_code == 200
    document = response.json()
    assert isinstance(document["generated_at"], float)
    primary = document["databases"]["primary"]
    for key in CONTRACT_KEYS:
        assert key in primary, key
    assert set(primary["wait_time"]) == {"count", "p50", "p90", "p99", "max"}
    assert primary["checked_out"] == 1
    assert primary["total"] == primary["checked_out"] + primary["available"]
    [held] = primary["held"]
    assert held["route"] == "GET /hold/{n}"  # the template, never /hold/1
    assert held["site"].startswith(f"{HERE}:")
    assert held["site"].endswith(" in hold")
    routes = [r["route"] for r in primary["routes"]]
    assert "GET /users/{user_id}" in routes
    assert "/users/7" not in " ".join(routes)


async def test_session_held_across_a_streaming_response_is_reported(
    running: FastAPI, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="pooltender")
    async with client(running) as c:
        assert (await c.get("/stream")).content == b"xx"
    db = databases(running).primary
    stats = db.stats()
    assert stats.held_after_response == 1
    deadline = asyncio.get_running_loop().time() + 5
    while not any("after the response started" in r.getMessage() for r in caplog.records):
        assert asyncio.get_running_loop().time() < deadline, "no held-after-response warning"
        await asyncio.sleep(0.02)
    [record] = [r for r in caplog.records if "after the response started" in r.getMessage()]
    assert "GET /stream" in record.getMessage()
    assert "scope=" in record.getMessage()  # the advice for this FastAPI version


async def test_debug_endpoints_answer_loopback_only_without_a_token(running: FastAPI) -> None:
    async with client(running, ("10.1.2.3", 5000)) as c:
        assert (await c.get("/debug/pool-stats")).status_code == 403
        assert (await c.get("/metrics")).status_code == 403
    async with client(running, ("::1", 5000)) as c:
        assert (await c.get("/debug/pool-stats")).status_code == 200


async def test_debug_endpoints_need_the_token_when_one_is_set(tmp_path: Path) -> None:
    app = make_app(tmp_path, token="s3cret-token")
    async with app.router.lifespan_context(app), client(app) as c:
        assert (await c.get("/debug/pool-stats")).status_code == 401
        assert (await c.get("/metrics")).status_code == 401
        wrong = {"Authorization": "Bearer nope"}
        assert (await c.get("/debug/pool-stats", headers=wrong)).status_code == 401
        right = {"Authorization": "Bearer s3cret-token"}
        response = await c.get("/debug/pool-stats", headers=right)
        assert response.status_code == 200
        assert "s3cret-token" not in response.text
        assert (await c.get("/metrics", headers=right)).status_code == 200
    app = make_app(tmp_path, token="s3cret-token")
    async with app.router.lifespan_context(app), client(app, ("10.9.9.9", 1)) as c:
        assert (await c.get("/debug/pool-stats", headers=right)).status_code == 200


async def test_metrics_carry_every_family(running: FastAPI) -> None:
    async with client(running) as c:
        await c.get("/users/1")
        await c.get("/hold/1")
        response = await c.get("/metrics")
    assert response.status_code == 200
    families = {f.name: f for f in text_string_to_metric_families(response.text)}
    for name, (kind, labels, _) in METRICS.items():
        exposed = name.removesuffix("_total") if kind == "counter" else name
        assert exposed in families, name
        family = families[exposed]
        assert family.type == kind, name
        if name == "pooltender_server_connections_max":  # SQLite: no server, no limit
            assert family.samples == [], name
            continue
        assert family.samples, name
        for sample in family.samples:
            assert sample.labels["pool_name"] == "primary"
            for label in labels:
                assert label in sample.labels, (name, label)
    states = {s.labels["state"]: s.value for s in families["db_client_connection_count"].samples}
    assert states == {"idle": pytest.approx(states["idle"]), "used": 1.0}
    routes = {s.labels["route"] for s in families["db_client_connection_use_time_seconds"].samples}
    assert "GET /users/{user_id}" in routes
    timeouts = families["db_client_connection_timeouts"].samples
    assert timeouts[0].name == "db_client_connection_timeouts_total"


async def test_metrics_use_the_given_registry_never_the_global_one(tmp_path: Path) -> None:
    registry = CollectorRegistry()
    global_before = {m.name for m in REGISTRY.collect()}
    app = make_app(tmp_path, metrics_registry=registry, metrics_worker_label=True)
    async with app.router.lifespan_context(app):
        names = {m.name for m in registry.collect()}
        assert "db_client_connection_count" in names
        sample = next(
            s for m in registry.collect() for s in m.samples if m.name == "db_client_connection_max"
        )
        assert sample.labels["worker"] == str(os.getpid())
    assert {m.name for m in REGISTRY.collect()} == global_before


async def test_health_ready_and_live(running: FastAPI) -> None:
    async with client(running) as c:
        assert (await c.get("/health/live")).json() == {"status": "ok"}
        ready = await c.get("/health/ready")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ok", "databases": {"primary": "ok"}}


async def test_health_ready_names_a_failing_database(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    async with app.router.lifespan_context(app), client(app) as c:
        db = databases(app).primary
        await db.engine.dispose()
        (tmp_path / "t3api.db").unlink()
        (tmp_path / "t3api.db").mkdir()  # the file is now a directory: connects fail
        response = await c.get("/health/ready")
    assert response.status_code == 503
    assert list(response.json()["failing"]) == ["primary"]


async def test_sync_routes_on_a_sync_engine_are_attributed_too(tmp_path: Path) -> None:
    app = FastAPI()
    dbs = Databases(
        {
            "primary": Database(
                DatabaseSettings(url=f"sqlite:///{tmp_path}/t3sync.db"),
                pooltender_settings=PooltenderSettings(loop_block_threshold=0),
            )
        }
    )
    install(app, dbs, pooltender_settings=PooltenderSettings())
    seen: list[dict[str, object]] = []

    @app.get("/reports/{report_id}")
    def report(report_id: int, session: SyncSession) -> dict[str, int]:
        session.execute(text("SELECT 1"))
        seen.extend(dbs.primary.stats().held)
        return {"id": report_id}

    async with app.router.lifespan_context(app), client(app) as c:
        assert (await c.get("/reports/3")).status_code == 200
    [held] = seen
    assert held.route == "GET /reports/{report_id}"
    assert held.site.startswith(f"{HERE}:")
    assert held.site.endswith(" in report")
