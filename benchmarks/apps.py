"""The apps the benchmark serves, one per ``BENCH_APP`` value, each with one read endpoint.

``GET /users/{user_id}`` reads one row of ``bench_users`` (created by ``run.py``);
``GET /slow`` runs ``SELECT pg_sleep(0.1)`` (the overload scenario).

- ``seed``: the seed's pattern, a plain ``async_sessionmaker`` dependency, no pre-ping,
  the seed's pool 20 + 10 (``BENCH_SEED_POOL_SIZE``, ``BENCH_SEED_MAX_OVERFLOW``).
- ``nullpool``: the same, with ``NullPool`` (a new connection per request).
- ``pooltender``: ``install(app)`` and the ``Session`` dependency.
- ``connection``: ``install(app)`` and the ``Connection`` dependency (Core).
- ``readonly``: ``install(app)`` and ``ReadConnection`` (Core, no transaction).
- ``asyncpg``: a raw asyncpg pool, no SQLAlchemy (the ceiling).

The database URL is ``BENCH_DATABASE_URL``; pooltender apps also read ``DATABASE_*``.
"""

import contextlib
import os
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import Depends, FastAPI
from sqlalchemy import Column, Integer, MetaData, String, Table, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.pool import NullPool

URL = os.environ.get("BENCH_DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")

metadata = MetaData()
users = Table(
    "pooltender_bench_users",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(50)),
)
SLOW = text("SELECT pg_sleep(0.1)")


def by_id(user_id: int) -> Any:
    return select(users.c.id, users.c.name).where(users.c.id == user_id)


def seed_app(*, null_pool: bool = False) -> FastAPI:
    options: dict[str, Any] = (
        {"poolclass": NullPool}
        if null_pool
        else {
            "pool_size": int(os.environ.get("BENCH_SEED_POOL_SIZE", "20")),
            "max_overflow": int(os.environ.get("BENCH_SEED_MAX_OVERFLOW", "10")),
        }
    )
    engine = create_async_engine(URL, **options)
    session_local = async_sessionmaker(engine, expire_on_commit=False)

    async def get_session() -> AsyncIterator[AsyncSession]:
        async with session_local() as session:
            yield session

    SeedSession = Annotated[AsyncSession, Depends(get_session)]

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await engine.dispose()

    app = FastAPI(lifespan=lifespan)

    @app.get("/users/{user_id}")
    async def get_user(user_id: int, session: SeedSession) -> dict[str, Any]:
        row = (await session.execute(by_id(user_id))).one()
        return {"id": row.id, "name": row.name}

    @app.get("/slow")
    async def slow(session: SeedSession) -> dict[str, bool]:
        await session.execute(SLOW)
        return {"ok": True}

    return app


def pooltender_app(kind: str) -> FastAPI:
    from pooltender.fastapi import Connection, ReadConnection, Session, install

    app = FastAPI()
    install(app, cancel_abandoned=os.environ.get("BENCH_CANCEL_ABANDONED", "false") == "true")

    if kind == "pooltender":

        @app.get("/users/{user_id}")
        async def get_user(user_id: int, session: Session) -> dict[str, Any]:
            row = (await session.execute(by_id(user_id))).one()
            return {"id": row.id, "name": row.name}

    elif kind == "connection":

        @app.get("/users/{user_id}")
        async def get_user_core(user_id: int, connection: Connection) -> dict[str, Any]:
            row = (await connection.execute(by_id(user_id))).one()
            return {"id": row.id, "name": row.name}

    else:

        @app.get("/users/{user_id}")
        async def get_user_read(user_id: int, connection: ReadConnection) -> dict[str, Any]:
            row = (await connection.execute(by_id(user_id))).one()
            return {"id": row.id, "name": row.name}

    @app.get("/slow")
    async def slow(session: Session) -> dict[str, bool]:
        await session.execute(SLOW)
        return {"ok": True}

    return app


def asyncpg_app() -> FastAPI:
    import asyncpg

    # libpq's spelling of SQLAlchemy's asyncpg ``ssl`` query option
    dsn = URL.replace("postgresql+asyncpg://", "postgresql://").replace("ssl=", "sslmode=")
    pools: list[asyncpg.Pool] = []

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pools.append(await asyncpg.create_pool(dsn, min_size=5, max_size=5))
        yield
        await pools[0].close()

    app = FastAPI(lifespan=lifespan)

    @app.get("/users/{user_id}")
    async def get_user(user_id: int) -> dict[str, Any]:
        row = await pools[0].fetchrow(
            "SELECT id, name FROM pooltender_bench_users WHERE id = $1", user_id
        )
        return {"id": row["id"], "name": row["name"]}

    return app


def create_app() -> FastAPI:
    kind = os.environ["BENCH_APP"]
    if kind == "seed":
        return seed_app()
    if kind == "nullpool":
        return seed_app(null_pool=True)
    if kind == "asyncpg":
        return asyncpg_app()
    return pooltender_app(kind)
