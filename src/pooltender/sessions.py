"""Session factories of one database: the unit of work, its commit or rollback, and the
connection always given back.

:class:`AsyncSessions` and :class:`SyncSessions` are the two faces of one contract:
``session()`` commits when the block ends, rolls back on any exception (cancellation
included), and closes, returning the connection to the pool. ``AsyncSessions`` adds
Core connections (``connection()``, in a transaction; ``read_connection()``, in
autocommit). Each is built on a *bind*: an engine, or (the test kit) one connection
whose outer transaction every session joins through a SAVEPOINT.

``refuse``: called before any work starts; it raises when the pool would refuse the
checkout now (:meth:`pooltender.pool.GatedPool.refuse_if_saturated`), so a request is
refused before it has done anything, instead of at its first statement.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import anyio
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session, sessionmaker

from .ping import transaction_follows

__all__ = ["AsyncSessions", "SyncSessions", "finish"]

# Strong references to clean-up tasks that outlive a cancelled caller.
_cleanups: set[asyncio.Task[Any]] = set()


def _nothing() -> None:
    return None


class AsyncSessions:
    """The async session factories of one database (see the module docstring)."""

    def __init__(
        self,
        bind: AsyncEngine | AsyncConnection,
        *,
        session_class: type[Session] = Session,
        refuse: Callable[[], None] = _nothing,
        savepoints: bool = False,
    ) -> None:
        self.bind = bind
        self.refuse = refuse
        options: dict[str, Any] = {"expire_on_commit": False, "sync_session_class": session_class}
        if savepoints:
            options["join_transaction_mode"] = "create_savepoint"
        self.sessionmaker: async_sessionmaker[AsyncSession] = async_sessionmaker(bind, **options)
        """The factory behind :meth:`session`, for code that opens its own sessions
        (``async with maker.begin() as session``); its checkouts are gated and monitored
        like every other."""

    @contextlib.asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """An :class:`AsyncSession`: commit on success, roll back on any exception,
        connection always returned."""
        self.refuse()
        session = self.sessionmaker()
        try:
            with transaction_follows():
                yield session
            await session.commit()
        except BaseException:
            await finish(session.rollback)
            raise
        finally:
            await finish(session.close)

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[AsyncConnection]:
        """A Core :class:`AsyncConnection` inside a transaction (Core, no ORM)."""
        self.refuse()
        bind = self.bind
        if isinstance(bind, AsyncConnection):
            async with bind.begin_nested():
                yield bind
            return
        with transaction_follows():
            connection = await bind.connect()
        try:
            await connection.begin()
            yield connection
            await connection.commit()
        except BaseException:
            await finish(connection.rollback)
            raise
        finally:
            await finish(connection.close)

    @contextlib.asynccontextmanager
    async def read_connection(self) -> AsyncIterator[AsyncConnection]:
        """A Core :class:`AsyncConnection` in autocommit mode: the fastest path for reads.

        No ``BEGIN``/``COMMIT`` round trips: each statement runs in its own implicit
        transaction, so several reads may see different snapshots. Nothing makes the
        connection read-only; a write through it is committed at once, never rolled
        back. On a connection bind (the test kit), a SAVEPOINT: nothing can autocommit
        inside an outer transaction.
        """
        self.refuse()
        bind = self.bind
        if isinstance(bind, AsyncConnection):
            async with bind.begin_nested():
                yield bind
            return
        with transaction_follows(False):
            connection = await bind.connect()
        try:
            await connection.execution_options(isolation_level="AUTOCOMMIT")
            yield connection
        finally:
            await finish(connection.close)


class SyncSessions:
    """The sync session factory of one database (``def`` routes, scripts)."""

    def __init__(
        self,
        bind: Engine | Connection,
        *,
        session_class: type[Session] = Session,
        refuse: Callable[[], None] = _nothing,
    ) -> None:
        self.bind = bind
        self.refuse = refuse
        self.sessionmaker: sessionmaker[Session] = sessionmaker(
            bind, expire_on_commit=False, class_=session_class
        )

    @contextlib.contextmanager
    def session(self) -> Iterator[Session]:
        """A sync :class:`Session` with the same commit/rollback contract."""
        self.refuse()
        with self.sessionmaker() as session:
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise


async def finish(step: Callable[[], Awaitable[None]]) -> None:
    """Run a clean-up step to the end even if the caller is being cancelled.

    The step runs inline, shielded from anyio cancel scopes (a client that goes away
    cancels the request's scope). A task already being cancelled natively
    (``Task.cancel()``, ``asyncio.timeout``) runs the step in a task of its own behind
    ``asyncio.shield``, so the step completes while the cancellation propagates. A
    native cancel that lands *during* an inline step interrupts it; SQLAlchemy then
    invalidates the connection and returns its slot to the pool (nothing leaks, the
    pool opens a new connection later). That is the rare case; the common one costs no
    task and no extra turn of the event loop.
    """
    current = asyncio.current_task()
    if current is not None and not current.cancelling():
        with anyio.CancelScope(shield=True):
            await step()
        return
    task = asyncio.ensure_future(step())
    _cleanups.add(task)
    task.add_done_callback(_cleanups.discard)
    with anyio.CancelScope(shield=True):
        await asyncio.shield(task)
