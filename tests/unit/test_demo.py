"""The demo service on embedded SQLite: CRUD, errors, the analytics database."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import httpx
from fastapi.testclient import TestClient

from pooltender.demo import app as app_module
from pooltender.demo import create_app, demo_defaults
from pooltender.fastapi import databases
from tests.support.servers import serve


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
    assert site.startswith(os.path.relpath(Path(app_module.__file__))), site
    assert site.endswith(" in slow_report"), site
