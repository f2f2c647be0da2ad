"""The demo service on embedded SQLite: CRUD, errors, the analytics database.

The first tests run the demo as its users run it (SQLite files, a real server). The
rest test it the way a pooltender user tests their own service: on the pytest
plugin's in-memory databases (``make_sqlite_database``), through ``async_client``,
with ``pool_usage`` saying how many connections each request took. The same on
PostgreSQL, each test rolled back: ``tests/integration/test_demo_postgres.py``.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from pooltender import Database
from pooltender.fastapi import databases
from pooltender.testing import async_client, pool_usage
from pooltender.testing.plugin import DatabaseFactory
from pooltender_demo import app as app_module
from pooltender_demo import create_app, demo_defaults
from pooltender_demo.models import Event, Item, User
from tests.support.servers import serve

DEMO_APP = os.path.relpath(Path(app_module.__file__))


def test_defaults_are_sqlite_files_unless_the_environment_names_a_server(tmp_path: Path) -> None:
    files = demo_defaults({}, tmp_path)
    assert files["DATABASE_URL"] == f"sqlite+aiosqlite:///{tmp_path / 'demo.db'}"
    assert files["DATABASE_ANALYTICS_URL"].endswith("analytics.db")
    server = demo_defaults({"DATABASE_URL": "postgresql+asyncpg://x@db/y"}, tmp_path)
    assert server == {"DATABASE_ANALYTICS_URL": "postgresql+asyncpg://x@db/y"}


def test_demo_crud_and_analytics(tmp_path: Path) -> None:
    app = create_app({"POOLTENDER_DEMO_DIR": str(tmp_path)})
    with TestClient(app) as client:
        assert sorted(databases(app)) == ["analytics", "primary"]
        users = client.get("/users", params={"limit": 5}).json()
        assert [u["id"] for u in users] == [1, 2, 3, 4, 5]
        created = client.post("/users", json={"name": "Ada", "email": "ada@example.com"})
        assert created.status_code == 201
        ada = created.json()
        assert (
            client.post("/users", json={"name": "A2", "email": "ada@example.com"}).status_code
            == 409
        )
        assert (
            client.patch(f"/users/{ada['id']}", json={"name": "Ada L."}).json()["name"] == "Ada L."
        )
        item = client.post(f"/users/{ada['id']}/items", json={"title": "Engine", "price_cents": 5})
        assert item.status_code == 201
        assert client.get(f"/items/{item.json()['id']}").json()["title"] == "Engine"
        assert [i["title"] for i in client.get(f"/users/{ada['id']}/items").json()] == ["Engine"]
        assert client.get("/reports/slow", params={"seconds": 0}).json()["total_price_cents"] > 0
        summary = client.get("/analytics/summary").json()
        assert summary == {"seeded": 50, "user_created": 1}
        assert client.post("/analytics/events", json={"kind": "click"}).status_code == 201
        assert client.delete(f"/users/{ada['id']}").status_code == 204
        assert client.get(f"/users/{ada['id']}").status_code == 404
        assert client.get("/users/0").status_code == 422  # ids start at 1
        assert client.get("/users/999999").status_code == 404
        assert client.post("/users", json={"name": "", "email": "bad"}).status_code == 422
        assert client.get("/reports/slow", params={"seconds": 99}).status_code == 422
    # a second start finds the seeded data and does not seed again
    with TestClient(create_app({"POOLTENDER_DEMO_DIR": str(tmp_path)})) as client:
        assert client.get("/analytics/summary").json()["seeded"] == 50


def test_a_held_connection_of_the_demo_names_its_route_and_line(tmp_path: Path) -> None:
    app = create_app({"POOLTENDER_DEMO_DIR": str(tmp_path)})
    with serve(app) as base:
        slow = threading.Thread(
            target=lambda: httpx.get(f"{base}/reports/slow", params={"seconds": 2}, timeout=10)
        )
        slow.start()
        try:
            deadline = time.monotonic() + 5
            held: list[dict[str, object]] = []
            while not held and time.monotonic() < deadline:
                held = httpx.get(f"{base}/debug/pool-stats").json()["databases"]["primary"]["held"]
                time.sleep(0.05)
        finally:
            slow.join(10)
    assert [h["route"] for h in held] == ["GET /reports/slow"]
    site = str(held[0]["site"])
    assert site.startswith(DEMO_APP), site
    assert site.endswith(" in slow_report"), site


# -- on the plugin's test databases ---------------------------------------------------------


@pytest.fixture
async def demo_databases(make_sqlite_database: DatabaseFactory[Database]) -> dict[str, Database]:
    """The demo's two databases, in memory, new for each test.

    No tables: the demo's lifespan creates and seeds them, as it does on a real server.
    """
    return {
        "primary": await make_sqlite_database(metadata=None),
        "analytics": await make_sqlite_database("analytics", metadata=None),
    }


async def test_the_lifespan_seeds_the_test_databases(demo_databases: dict[str, Database]) -> None:
    app = create_app({})
    async with async_client(app, demo_databases) as client:
        assert dict(databases(app)) == demo_databases  # the app's own never start
        users = (await client.get("/users", params={"limit": 3})).json()
        assert [u["id"] for u in users] == [1, 2, 3]
    # the test reads the same databases the app wrote
    async with demo_databases["primary"].session() as session:
        assert await session.scalar(select(func.count()).select_from(User)) == 50
        assert await session.scalar(select(func.count()).select_from(Item)) == 150
    async with demo_databases["analytics"].session() as session:
        kinds = (await session.execute(select(Event.kind, func.count()).group_by(Event.kind))).all()
        assert kinds == [("seeded", 50)]


# Connections each request takes, per database (measured, and now held to):
# (method, path, body, status, primary, analytics).
CONNECTIONS: list[tuple[str, str, dict[str, Any] | None, int, int, int]] = [
    ("GET", "/users/1", None, 200, 1, 0),
    ("GET", "/users", None, 200, 1, 0),
    ("POST", "/users", {"name": "Ada", "email": "ada@example.com"}, 201, 1, 1),
    ("POST", "/users", {"name": "Twin", "email": "user1@example.com"}, 409, 1, 0),
    ("PATCH", "/users/1", {"name": "Ada L."}, 200, 1, 0),
    ("DELETE", "/users/1", None, 204, 1, 0),
    ("GET", "/users/1/items", None, 200, 1, 0),
    ("POST", "/users/1/items", {"title": "Engine", "price_cents": 5}, 201, 1, 0),
    ("GET", "/items/1", None, 200, 1, 0),
    ("GET", "/reports/slow?seconds=0", None, 200, 1, 0),
    ("GET", "/analytics/summary", None, 200, 0, 1),
    ("POST", "/analytics/events", {"kind": "click"}, 201, 0, 1),
    ("GET", "/users/999999", None, 404, 1, 0),
    ("GET", "/users/0", None, 422, 0, 0),
    ("POST", "/users", {"name": "", "email": "bad"}, 422, 0, 0),
]


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "on_primary", "on_analytics"),
    CONNECTIONS,
    ids=[f"{m} {p} {s}" for m, p, _, s, _, _ in CONNECTIONS],
)
async def test_each_request_takes_at_most_one_connection_of_each_database(
    demo_databases: dict[str, Database],
    method: str,
    path: str,
    body: dict[str, Any] | None,
    status: int,
    on_primary: int,
    on_analytics: int,
) -> None:
    async with async_client(create_app({}), demo_databases) as client:
        with (
            pool_usage(demo_databases["primary"]) as primary,
            pool_usage(demo_databases["analytics"]) as analytics,
        ):
            response = await client.request(method, path, json=body)
    assert response.status_code == status, response.text
    assert (primary.checkouts, analytics.checkouts) == (on_primary, on_analytics)
    assert primary.max_checked_out == on_primary  # never two at once
    assert analytics.max_checked_out == on_analytics
    assert (primary.checked_out, analytics.checked_out) == (0, 0)  # all returned


async def test_a_new_user_and_its_event_are_written_in_one_request(
    demo_databases: dict[str, Database],
) -> None:
    async with async_client(create_app({}), demo_databases) as client:
        with pool_usage(demo_databases["primary"]) as primary:
            created = await client.post("/users", json={"name": "Ada", "email": "ada@example.com"})
        assert created.status_code == 201
        # where the connection was taken: the demo's route, found past FastAPI and SQLAlchemy
        assert primary.sites == [f"{DEMO_APP}:{_line_of('session.flush()')} in create_user"]
        assert (await client.get("/analytics/summary")).json() == {"seeded": 50, "user_created": 1}
    user_id = created.json()["id"]
    async with demo_databases["analytics"].session() as session:
        event = await session.scalar(select(Event).where(Event.kind == "user_created"))
        assert event is not None
        assert event.user_id == user_id


async def test_a_refused_user_writes_nothing_on_either_database(
    demo_databases: dict[str, Database],
) -> None:
    async with async_client(create_app({}), demo_databases) as client:
        twin = await client.post("/users", json={"name": "Twin", "email": "user1@example.com"})
        assert twin.status_code == 409
        assert twin.json() == {"detail": "a user with email 'user1@example.com' exists"}
        assert (await client.get("/analytics/summary")).json() == {"seeded": 50}
    async with demo_databases["primary"].session() as session:
        assert await session.scalar(select(func.count()).select_from(User)) == 50


def _line_of(code: str) -> int:
    """The line of the demo's app module holding ``code`` (the first one)."""
    lines = Path(app_module.__file__).read_text().splitlines()
    return next(n for n, line in enumerate(lines, 1) if code in line)
