"""The demo service on PostgreSQL, tested as a pooltender user tests their own service.

Each test gets the demo's two databases from the pytest plugin
(``make_postgres_database``): each one connection in a transaction rolled back when the
test ends. The demo runs against them through ``async_client``; its lifespan seeds
them (inside that transaction, unless the server already holds the seed), its commits
release savepoints, and nothing stays behind. ``pool_usage`` says how many
connections each request took.
"""

from __future__ import annotations

import os
import uuid

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import create_async_engine

from pooltender.testing import IsolatedDatabase, async_client, pool_usage
from pooltender.testing.plugin import DEFAULT_POSTGRES_URL, URL_VARIABLE, DatabaseFactory
from pooltender_demo import create_app
from pooltender_demo.models import AnalyticsBase, Base, Event, Item, User

URL = os.environ.get(URL_VARIABLE, DEFAULT_POSTGRES_URL)


@pytest.fixture
async def demo_databases(
    make_postgres_database: DatabaseFactory[IsolatedDatabase],
) -> dict[str, IsolatedDatabase]:
    """The demo's ``primary`` and ``analytics`` databases, both rolled back after the test."""
    return {
        "primary": await make_postgres_database(metadata=Base.metadata),
        "analytics": await make_postgres_database("analytics", metadata=AnalyticsBase.metadata),
    }


def new_email() -> str:
    # The server may hold users committed outside these tests (the demo run on it).
    return f"ada-{uuid.uuid4().hex[:12]}@example.com"


async def committed_users_with(email: str) -> int:
    """Users with ``email`` that a connection outside the test's transaction sees."""
    engine = create_async_engine(URL)
    try:
        async with engine.connect() as connection:
            if await connection.scalar(text("SELECT to_regclass('demo_users')")) is None:
                return 0
            found = await connection.scalar(
                text("SELECT count(*) FROM demo_users WHERE email = :email"), {"email": email}
            )
            return int(found or 0)
    finally:
        await engine.dispose()


async def test_the_demo_writes_only_inside_the_tests_transaction(
    demo_databases: dict[str, IsolatedDatabase],
) -> None:
    primary, analytics = demo_databases["primary"], demo_databases["analytics"]
    pool_checkouts = {name: db.stats().checkouts for name, db in demo_databases.items()}
    email = new_email()
    async with async_client(create_app({}), demo_databases) as client:
        summary = (await client.get("/analytics/summary")).json()
        assert summary["seeded"] >= 50  # seeded by the lifespan, or found seeded
        with pool_usage(primary) as on_primary, pool_usage(analytics) as on_analytics:
            created = await client.post("/users", json={"name": "Ada", "email": email})
        assert created.status_code == 201, created.text
        assert (on_primary.checkouts, on_analytics.checkouts) == (1, 1)
        user_id = created.json()["id"]
        with pool_usage(primary) as on_primary:
            assert (await client.get(f"/users/{user_id}")).json()["email"] == email
        assert on_primary.max_checked_out == 1  # GET /users/{id} used at most one connection
        after = (await client.get("/analytics/summary")).json()
        assert after["user_created"] == summary.get("user_created", 0) + 1
    # Every statement of the app, its lifespan's included, ran on the test's connection:
    # neither pool handed out another one.
    assert {name: db.stats().checkouts for name, db in demo_databases.items()} == (pool_checkouts)
    async with primary.session() as session:  # the test sees what the app wrote ...
        assert await session.scalar(select(User.email).where(User.id == user_id)) == email
    async with analytics.session() as session:
        event = await session.scalar(select(Event).where(Event.user_id == user_id))
        assert event is not None
        assert event.kind == "user_created"
    assert await committed_users_with(email) == 0  # ... and nobody else does


async def test_a_refused_user_rolls_back_its_savepoint_only(
    demo_databases: dict[str, IsolatedDatabase],
) -> None:
    email = new_email()
    async with async_client(create_app({}), demo_databases) as client:
        ada = (await client.post("/users", json={"name": "Ada", "email": email})).json()
        twin = await client.post("/users", json={"name": "Twin", "email": email})
        assert twin.status_code == 409
        # PostgreSQL aborts a transaction on an error: the test's outer transaction
        # survives because the request's failed INSERT ran in a savepoint of its own.
        assert (await client.get(f"/users/{ada['id']}")).json()["name"] == "Ada"
        renamed = await client.patch(f"/users/{ada['id']}", json={"name": "Ada L."})
        assert renamed.json()["name"] == "Ada L."


async def test_reads_take_one_connection_of_their_own_database(
    demo_databases: dict[str, IsolatedDatabase],
) -> None:
    primary, analytics = demo_databases["primary"], demo_databases["analytics"]
    async with async_client(create_app({}), demo_databases) as client:
        async with primary.session() as session:
            item_id = await session.scalar(select(func.min(Item.id)))
        for path, on_primary_wanted, on_analytics_wanted in [
            ("/users?limit=3", 1, 0),
            (f"/items/{item_id}", 1, 0),
            ("/reports/slow?seconds=0.01", 1, 0),  # pg_sleep on PostgreSQL
            ("/analytics/summary", 0, 1),
        ]:
            with pool_usage(primary) as on_primary, pool_usage(analytics) as on_analytics:
                response = await client.get(path)
            assert response.status_code == 200, (path, response.text)
            assert (on_primary.checkouts, on_analytics.checkouts) == (
                on_primary_wanted,
                on_analytics_wanted,
            ), path
            assert on_primary.max_checked_out <= 1, path
