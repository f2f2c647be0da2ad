"""Request dependencies: one session (or connection) per request, always returned.

Each dependency exits with ``scope="function"``: the transaction commits (or rolls
back) *before* the response is sent, so a client never sees 200 for a write that
failed to commit.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Iterator
from contextlib import AbstractAsyncContextManager
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.orm import Session as OrmSession
from starlette.applications import Starlette

from ..databases import Databases
from ..errors import LifecycleError
from ..settings import PRIMARY

__all__ = [
    "Connection",
    "ReadConnection",
    "Session",
    "SyncSession",
    "connection_for",
    "databases",
    "read_connection_for",
    "session_for",
    "sync_session_for",
]

STATE_KEY = "pooltender"
FACTORY_KEY = "pooltender_factory"
DATABASE_ATTRIBUTE = "pooltender_database"
"""Set on each request dependency: the name of the database it takes a connection of."""


def databases(app: FastAPI | Starlette) -> Databases:
    """The running :class:`Databases` of an app set up with :func:`install`."""
    dbs = getattr(app.state, STATE_KEY, None)
    if not isinstance(dbs, Databases):
        raise LifecycleError(
            "pooltender is not running on this app: call pooltender.fastapi.install(app) and "
            "run the app's lifespan (with TestClient: `with TestClient(app) as client:`)"
        )
    return dbs


def _async_dependency(name: str, method: str) -> Any:
    """A request dependency yielding ``databases(app)[name].<method>()``.

    The method is looked up on the running database, so a subclass's override
    (e.g. the test databases of :mod:`pooltender.testing`) is the one called.
    """

    async def dependency(request: Request) -> AsyncIterator[Any]:
        opened: AbstractAsyncContextManager[Any] = getattr(databases(request.app)[name], method)()
        async with opened as resource:
            yield resource

    dependency.__name__ = f"pooltender_{method}_{name}"
    setattr(dependency, DATABASE_ATTRIBUTE, name)
    return Depends(dependency, scope="function")


@functools.cache
def session_for(name: str) -> Any:
    """The dependency giving an :class:`AsyncSession` of database ``name``.

    ``session: Annotated[AsyncSession, session_for("analytics")]``. The session
    commits when the route returns, rolls back when it raises.
    """
    return _async_dependency(name, "session")


@functools.cache
def connection_for(name: str) -> Any:
    """The dependency giving a Core :class:`AsyncConnection` inside a transaction."""
    return _async_dependency(name, "connection")


@functools.cache
def read_connection_for(name: str) -> Any:
    """The dependency giving a Core :class:`AsyncConnection` in autocommit mode (reads)."""
    return _async_dependency(name, "read_connection")


@functools.cache
def sync_session_for(name: str) -> Any:
    """The dependency giving a sync :class:`sqlalchemy.orm.Session` (for ``def`` routes)."""

    def sync_session_dependency(request: Request) -> Iterator[OrmSession]:
        with databases(request.app)[name].sync_session() as session:
            yield session

    sync_session_dependency.__name__ = f"pooltender_sync_session_{name}"
    setattr(sync_session_dependency, DATABASE_ATTRIBUTE, name)
    return Depends(sync_session_dependency, scope="function")


Session = Annotated[AsyncSession, session_for(PRIMARY)]
"""The primary database's :class:`AsyncSession` for one request."""

SyncSession = Annotated[OrmSession, sync_session_for(PRIMARY)]
"""The primary database's sync session, for ``def`` routes on a sync driver."""

Connection = Annotated[AsyncConnection, connection_for(PRIMARY)]
"""The primary database's Core connection in a transaction (Core, no ORM)."""

ReadConnection = Annotated[AsyncConnection, read_connection_for(PRIMARY)]
"""The primary database's Core connection in autocommit mode: no BEGIN/COMMIT round trips."""
