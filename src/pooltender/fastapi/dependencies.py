"""Request dependencies: one session (or connection) per request, always returned.

Each dependency exits with ``scope="function"``: the transaction commits (or rolls
back) *before* the response is sent, so a client never sees 200 for a write that
failed to commit.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session as OrmSession
from starlette.applications import Starlette

from ..database import Database
from ..databases import Databases
from ..errors import LifecycleError
from ..settings import PRIMARY
from .routetable import DATABASE_ATTRIBUTE
from .state import STATE_KEY

__all__ = [
    "Connection",
    "ReadConnection",
    "Session",
    "SessionMaker",
    "SyncSession",
    "connection_for",
    "databases",
    "read_connection_for",
    "session_for",
    "sessionmaker_for",
    "sync_session_for",
]


def databases(app: FastAPI | Starlette) -> Databases:
    """The running :class:`Databases` of an app set up with :func:`install`."""
    dbs = getattr(app.state, STATE_KEY, None)
    if not isinstance(dbs, Databases):
        raise LifecycleError(
            "pooltender is not running on this app: call pooltender.fastapi.install(app) and "
            "run the app's lifespan (with TestClient: `with TestClient(app) as client:`)"
        )
    return dbs


def _mark(dependency: Callable[..., Any], kind: str, name: str) -> Any:
    dependency.__name__ = f"pooltender_{kind}_{name}"
    setattr(dependency, DATABASE_ATTRIBUTE, name)  # the admission gate reads it
    return Depends(dependency, scope="function")


def _async_dependency(
    name: str, kind: str, open_: Callable[[Database], AbstractAsyncContextManager[Any]]
) -> Any:
    """A request dependency yielding what ``open_`` opens on the running database
    ``name`` (a test database's override included: ``open_`` calls its method)."""

    async def dependency(request: Request) -> AsyncIterator[Any]:
        async with open_(databases(request.app)[name]) as resource:
            yield resource

    return _mark(dependency, kind, name)


@functools.cache
def session_for(name: str) -> Any:
    """The dependency giving an :class:`AsyncSession` of database ``name``.

    ``session: Annotated[AsyncSession, session_for("analytics")]``. The session
    commits when the route returns, rolls back when it raises.
    """
    return _async_dependency(name, "session", lambda db: db.session())


@functools.cache
def connection_for(name: str) -> Any:
    """The dependency giving a Core :class:`AsyncConnection` inside a transaction."""
    return _async_dependency(name, "connection", lambda db: db.connection())


@functools.cache
def read_connection_for(name: str) -> Any:
    """The dependency giving a Core :class:`AsyncConnection` in autocommit mode (reads)."""
    return _async_dependency(name, "read_connection", lambda db: db.read_connection())


@functools.cache
def sessionmaker_for(name: str) -> Any:
    """The dependency giving database ``name``'s :class:`async_sessionmaker`, for use
    cases that open their own sessions (``async with maker.begin() as session``).

    Nothing is opened for the request: the use case owns its sessions and their
    transactions; their checkouts are still gated (503 when the pool cannot serve) and
    monitored. When the pool would refuse a checkout now, the request is refused
    before it starts, as with :func:`session_for`.
    """

    def sessionmaker_dependency(request: Request) -> async_sessionmaker[AsyncSession]:
        db = databases(request.app)[name]
        db.admit()
        return db.sessionmaker

    return _mark(sessionmaker_dependency, "sessionmaker", name)


@functools.cache
def sync_session_for(name: str) -> Any:
    """The dependency giving a sync :class:`sqlalchemy.orm.Session` (for ``def`` routes)."""

    def sync_session_dependency(request: Request) -> Iterator[OrmSession]:
        with databases(request.app)[name].sync_session() as session:
            yield session

    return _mark(sync_session_dependency, "sync_session", name)


Session = Annotated[AsyncSession, session_for(PRIMARY)]
"""The primary database's :class:`AsyncSession` for one request."""

SyncSession = Annotated[OrmSession, sync_session_for(PRIMARY)]
"""The primary database's sync session, for ``def`` routes on a sync driver."""

Connection = Annotated[AsyncConnection, connection_for(PRIMARY)]
"""The primary database's Core connection in a transaction (Core, no ORM)."""

ReadConnection = Annotated[AsyncConnection, read_connection_for(PRIMARY)]
"""The primary database's Core connection in autocommit mode: no BEGIN/COMMIT round trips."""

SessionMaker = Annotated[async_sessionmaker[AsyncSession], sessionmaker_for(PRIMARY)]
"""The primary database's :class:`async_sessionmaker`, for use cases that open their own
sessions."""
