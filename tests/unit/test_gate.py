"""The admission gate: a request whose database cannot take it is refused before routing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated

import pytest
from fastapi import APIRouter, FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from pooltender import Database, DatabaseSettings
from pooltender.fastapi import Session, install, session_for
from pooltender.fastapi.routetable import databases_of
from pooltender.testing import async_client


@pytest.fixture
async def saturated(tmp_path: Path) -> AsyncIterator[tuple[Database, Database, AsyncConnection]]:
    """``primary`` with its only connection held and no room to wait; ``analytics`` free."""
    primary = Database(
        DatabaseSettings(
            url=f"sqlite+aiosqlite:///{tmp_path / 'p.sqlite'}",
            pool_size=1,
            max_overflow=0,
            max_waiting=0,
        )
    )
    analytics = Database(
        DatabaseSettings(name="analytics", url=f"sqlite+aiosqlite:///{tmp_path / 'a.sqlite'}")
    )
    await primary.start()
    await analytics.start()
    try:
        async with primary.engine.connect() as held:
            await held.execute(text("SELECT 1"))
            assert primary.saturated()
            yield primary, analytics, held
    finally:
        await primary.stop()
        await analytics.stop()


def make_app(ran: list[str]) -> FastAPI:
    app = FastAPI()
    install(app)

    @app.get("/users/me")
    async def me() -> dict[str, str]:
        ran.append("me")
        return {"name": "me"}

    @app.get("/users/{user_id}")
    async def get_user(user_id: int, session: Session) -> dict[str, int]:
        ran.append("get_user")
        return {"id": user_id}

    @app.get("/plain")
    async def plain() -> dict[str, bool]:
        ran.append("plain")
        return {"ok": True}

    @app.get("/events")
    async def events(session: Annotated[AsyncSession, session_for("analytics")]) -> dict[str, int]:
        ran.append("events")
        return {"n": int(await session.scalar(text("SELECT 1")) or 0)}

    router = APIRouter()

    @router.get("/nested/{n}")
    async def nested(n: int, session: Session) -> dict[str, int]:
        ran.append("nested")
        return {"n": int(await session.scalar(text("SELECT :n"), {"n": n}) or 0)}

    @router.get("/free")
    async def free() -> dict[str, bool]:
        ran.append("free")
        return {"ok": True}

    app.include_router(router, prefix="/inner")
    return app


async def test_a_request_for_a_saturated_database_is_refused_before_routing(
    saturated: tuple[Database, Database, AsyncConnection],
) -> None:
    primary, analytics, _ = saturated
    ran: list[str] = []
    app = make_app(ran)
    async with async_client(app, {"primary": primary, "analytics": analytics}) as client:
        # not even validated: the gate answers before FastAPI would say 422
        refused = await client.get("/users/not-a-number")
        assert refused.status_code == 503
        assert refused.headers["retry-after"] == str(primary.settings.retry_after)
        detail = refused.json()["detail"]
        assert (detail["database"], detail["reason"]) == ("primary", "overloaded")
        assert (await client.get("/users/7")).status_code == 503
        assert primary.wait_queue.rejected == 2
        # what does not need the saturated database is served, in the router's order
        assert (await client.get("/users/me")).json() == {"name": "me"}
        assert (await client.get("/plain")).json() == {"ok": True}
        assert (await client.get("/events")).json() == {"n": 1}
        assert (await client.get("/health/live")).status_code == 200
        assert (await client.get("/inner/free")).json() == {"ok": True}
        # a route inside an included router is placed by its full path: refused first
        nested = await client.get("/inner/nested/not-a-number")
        assert nested.status_code == 503
        assert nested.json()["detail"]["reason"] == "overloaded"
        assert primary.wait_queue.rejected == 3
        # a path no route takes, or a method the route does not take: not the gate's
        assert (await client.get("/nowhere")).status_code == 404
        assert (await client.delete("/users/7")).status_code == 405
    assert ran == ["me", "plain", "events", "free"]


async def test_the_gate_lets_requests_through_once_a_connection_is_free(
    saturated: tuple[Database, Database, AsyncConnection],
) -> None:
    primary, analytics, held = saturated
    ran: list[str] = []
    app = make_app(ran)
    async with async_client(app, {"primary": primary, "analytics": analytics}) as client:
        assert (await client.get("/users/7")).status_code == 503
        await held.close()
        assert not primary.saturated()
        assert (await client.get("/users/7")).json() == {"id": 7}
    assert ran == ["get_user"]


def test_a_routes_databases_are_read_from_its_dependency_tree() -> None:
    app = make_app([])
    by_path = {getattr(route, "path", None): route for route in app.router.routes}
    assert databases_of(by_path["/users/{user_id}"]) == {"primary"}
    assert databases_of(by_path["/events"]) == {"analytics"}
    assert databases_of(by_path["/plain"]) == frozenset()
