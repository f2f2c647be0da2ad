"""The demo service: users and items CRUD, a slow report, analytics on a second database.

Runs on embedded SQLite files with no set-up (``pooltender demo``); with
``DATABASE_URL`` pointing at PostgreSQL the same service runs there and creates
its tables. It uses only pooltender's public API.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Annotated

from fastapi import FastAPI, HTTPException, Query, Response
from fastapi import Path as PathParam
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from pooltender import Databases
from pooltender.fastapi import Session, databases, install, session_for

from .models import AnalyticsBase, Base, Event, Item, User

__all__ = ["create_app", "demo_defaults"]

AnalyticsSession = Annotated[AsyncSession, session_for("analytics")]

SEED_USERS = 50
SEED_ITEMS_PER_USER = 3


def demo_defaults(environ: Mapping[str, str], directory: Path | None = None) -> dict[str, str]:
    """Database URLs for what the environment leaves unset.

    No ``DATABASE_URL``: two SQLite files in ``directory`` (default
    ``$POOLTENDER_DEMO_DIR`` or ``~/.cache/pooltender/demo``). With ``DATABASE_URL``
    but no ``DATABASE_ANALYTICS_URL``: analytics shares the primary's server.
    """
    if "DATABASE_URL" in environ:
        if "DATABASE_ANALYTICS_URL" in environ:
            return {}
        return {"DATABASE_ANALYTICS_URL": environ["DATABASE_URL"]}
    if directory is None:
        configured = environ.get("POOLTENDER_DEMO_DIR")
        directory = (
            Path(configured) if configured else Path.home() / ".cache" / "pooltender" / "demo"
        )
    directory.mkdir(parents=True, exist_ok=True)
    return {
        "DATABASE_URL": f"sqlite+aiosqlite:///{directory / 'demo.db'}",
        "DATABASE_ANALYTICS_URL": f"sqlite+aiosqlite:///{directory / 'analytics.db'}",
    }


# -- API models ----------------------------------------------------------------------------


class UserIn(BaseModel):
    name: str = Field(min_length=1, max_length=100)
    email: str = Field(min_length=3, max_length=200, pattern=r"^[^@\s]+@[^@\s]+$")


class UserPatch(BaseModel):
    name: str | None = Field(default=None, min_length=1, max_length=100)
    email: str | None = Field(
        default=None, min_length=3, max_length=200, pattern=r"^[^@\s]+@[^@\s]+$"
    )


class UserOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    name: str
    email: str


class ItemIn(BaseModel):
    title: str = Field(min_length=1, max_length=200)
    price_cents: int = Field(default=0, ge=0, le=10**9)


class ItemOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    owner_id: int
    title: str
    price_cents: int


class EventIn(BaseModel):
    kind: str = Field(min_length=1, max_length=50)
    user_id: int | None = Field(default=None, ge=1, le=2**31 - 1)


# Ids fit every backend's 32-bit integer: a larger one is a 422, not a driver error.
DbId = Annotated[int, PathParam(ge=1, le=2**31 - 1)]


# -- the app --------------------------------------------------------------------------------


def create_app(environ: Mapping[str, str] | None = None) -> FastAPI:
    """The demo app. ``environ`` defaults to the process environment."""
    env = dict(os.environ if environ is None else environ)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await _create_schema(databases(app))
        yield

    app = FastAPI(title="pooltender demo", version="1", lifespan=lifespan)
    install(app, lambda: Databases.from_env(env, defaults=demo_defaults(env)))

    @app.get("/users", response_model=list[UserOut])
    async def list_users(
        session: Session,
        limit: Annotated[int, Query(ge=1, le=100)] = 20,
        offset: Annotated[int, Query(ge=0, le=10**6)] = 0,
    ) -> list[User]:
        result = await session.scalars(select(User).order_by(User.id).limit(limit).offset(offset))
        return list(result)

    @app.post("/users", response_model=UserOut, status_code=201)
    async def create_user(body: UserIn, session: Session, analytics: AnalyticsSession) -> User:
        user = User(name=body.name, email=body.email)
        session.add(user)
        try:
            await session.flush()
        except IntegrityError:
            raise HTTPException(409, f"a user with email {body.email!r} exists") from None
        analytics.add(Event(kind="user_created", user_id=user.id))
        return user

    @app.get("/users/{user_id}", response_model=UserOut)
    async def get_user(user_id: DbId, session: Session) -> User:
        return await _user_or_404(session, user_id)

    @app.patch("/users/{user_id}", response_model=UserOut)
    async def update_user(user_id: DbId, body: UserPatch, session: Session) -> User:
        user = await _user_or_404(session, user_id)
        if body.name is not None:
            user.name = body.name
        if body.email is not None:
            user.email = body.email
        try:
            await session.flush()
        except IntegrityError:
            raise HTTPException(409, f"a user with email {body.email!r} exists") from None
        return user

    @app.delete("/users/{user_id}", status_code=204)
    async def delete_user(user_id: DbId, session: Session) -> Response:
        user = await _user_or_404(session, user_id)
        await session.delete(user)
        return Response(status_code=204)

    @app.get("/users/{user_id}/items", response_model=list[ItemOut])
    async def list_items(user_id: DbId, session: Session) -> list[Item]:
        await _user_or_404(session, user_id)
        result = await session.scalars(
            select(Item).where(Item.owner_id == user_id).order_by(Item.id)
        )
        return list(result)

    @app.post("/users/{user_id}/items", response_model=ItemOut, status_code=201)
    async def create_item(user_id: DbId, body: ItemIn, session: Session) -> Item:
        await _user_or_404(session, user_id)
        item = Item(owner_id=user_id, title=body.title, price_cents=body.price_cents)
        session.add(item)
        await session.flush()
        return item

    @app.get("/items/{item_id}", response_model=ItemOut)
    async def get_item(item_id: DbId, session: Session) -> Item:
        item = await session.get(Item, item_id)
        if item is None:
            raise HTTPException(404, f"no item {item_id}")
        return item

    @app.get("/reports/slow")
    async def slow_report(
        session: Session, seconds: Annotated[float, Query(ge=0, le=5)] = 0.5
    ) -> dict[str, float | int]:
        """Holds its connection for ``seconds``: a slow query on PostgreSQL, a wait on SQLite."""
        if session.get_bind().dialect.name == "postgresql":
            await session.execute(text("SELECT pg_sleep(:s)"), {"s": seconds})
        else:
            await session.execute(text("SELECT 1"))
            await asyncio.sleep(seconds)
        total = await session.scalar(select(func.coalesce(func.sum(Item.price_cents), 0)))
        return {"seconds": seconds, "total_price_cents": int(total or 0)}

    @app.get("/analytics/summary")
    async def analytics_summary(analytics: AnalyticsSession) -> dict[str, int]:
        rows = await analytics.execute(select(Event.kind, func.count()).group_by(Event.kind))
        return {kind: int(count) for kind, count in rows.all()}

    @app.post("/analytics/events", status_code=201)
    async def record_event(body: EventIn, analytics: AnalyticsSession) -> dict[str, int]:
        event = Event(kind=body.kind, user_id=body.user_id)
        analytics.add(event)
        await analytics.flush()
        return {"id": event.id}

    return app


async def _user_or_404(session: AsyncSession, user_id: int) -> User:
    user = await session.get(User, user_id)
    if user is None:
        raise HTTPException(404, f"no user {user_id}")
    return user


async def _create_schema(dbs: Databases) -> None:
    """Create the demo's tables (if missing) and seed them once."""
    primary, analytics = dbs["primary"], dbs["analytics"]
    # Through the databases' own connections, not their engines: the test databases of
    # pooltender.testing then run this inside the transaction they roll back.
    async with primary.connection() as connection:
        await connection.run_sync(Base.metadata.create_all)
    async with analytics.connection() as connection:
        await connection.run_sync(AnalyticsBase.metadata.create_all)
    async with primary.session() as session:
        if await session.scalar(select(func.count()).select_from(User)):
            return
        for n in range(1, SEED_USERS + 1):
            user = User(name=f"User {n}", email=f"user{n}@example.com")
            user.items = [
                Item(title=f"Item {n}.{k}", price_cents=100 * n + k)
                for k in range(1, SEED_ITEMS_PER_USER + 1)
            ]
            session.add(user)
    async with analytics.session() as events:
        events.add_all(Event(kind="seeded", user_id=n) for n in range(1, SEED_USERS + 1))
