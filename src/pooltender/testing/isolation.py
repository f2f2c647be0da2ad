"""``IsolatedDatabase``: a test database whose every transaction is rolled back.

``start()`` checks out one connection and begins the *outer* transaction on it
(and, given a ``MetaData``, creates its missing tables inside it: PostgreSQL's DDL
is transactional). Every :meth:`~IsolatedDatabase.session` joins that transaction
through a SAVEPOINT (SQLAlchemy's ``join_transaction_mode="create_savepoint"``), so
the code under test may ``commit()`` and ``rollback()`` freely; every
:meth:`~IsolatedDatabase.connection` gets a SAVEPOINT too. ``stop()`` rolls the
outer transaction back: the test leaves nothing behind.

The one connection is lent to one user at a time (concurrent requests of the same
test queue for it). A user that waits while the same holder keeps it for
``lend_timeout`` seconds (default 5) gets a :class:`~pooltender.LifecycleError` naming
both sites instead of a silent hang: that is a session held open while the app serves
a request of the same test, a self-deadlock (seed through ``outer_connection``, or
close the session before the request). The connection belongs to the event loop
``start()`` ran on: using it from another loop raises a ``LifecycleError`` at once,
instead of the driver's "attached to a different loop" deep inside a request.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

from sqlalchemy import MetaData
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from ..database import Database
from ..errors import LifecycleError
from ..sessions import AsyncSessions
from ..settings import DatabaseSettings
from .checkouts import CheckoutTracker, Held, checkout_site

__all__ = ["IsolatedDatabase"]


class IsolatedDatabase(Database):
    """A :class:`~pooltender.Database` whose sessions share one rolled-back transaction.

    >>> db = IsolatedDatabase(DatabaseSettings(url="postgresql+asyncpg://postgres@/test"))
    >>> await db.start()
    >>> async with db.session() as session:   # commits a SAVEPOINT, not the data
    ...     session.add(User(name="x"))
    >>> await db.stop()                        # everything rolled back

    ``checkout_tracker`` records who holds the connection (see
    :mod:`pooltender.testing.checkouts`): a session or connection not closed by the
    end of a test is a leak, named by its checkout site.
    """

    def __init__(
        self,
        settings: DatabaseSettings,
        *,
        metadata: MetaData | None = None,
        lend_timeout: float = 5.0,
    ) -> None:
        super().__init__(settings)
        self.metadata = metadata
        self.lend_timeout = lend_timeout
        self._holder: Held | None = None
        self.checkout_tracker = CheckoutTracker(settings.name)
        self._outer: AsyncConnection | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock: asyncio.Lock | None = None

    async def start(self) -> None:
        await super().start()
        if self._outer is not None:
            return
        engine = self.engine  # raises LifecycleError for a sync driver
        try:
            outer = await engine.connect()
            await outer.begin()
            if self.metadata is not None:
                await outer.run_sync(self.metadata.create_all)
        except BaseException:
            await super().stop()
            raise
        self._outer = outer
        self._loop = asyncio.get_running_loop()
        self._lock = asyncio.Lock()
        # Every session, connection and read connection joins the outer transaction.
        self.sessions = AsyncSessions(outer, savepoints=True)
        # Any other checkout (engine.connect() in the code under test) is tracked too.
        self.checkout_tracker.watch(engine)

    async def stop(self) -> None:
        outer, self._outer = self._outer, None
        if outer is not None:
            self.checkout_tracker.unwatch()
            try:
                await outer.rollback()
            finally:
                await outer.close()
        await super().stop()

    @property
    def outer_connection(self) -> AsyncConnection:
        """The connection holding the outer transaction (for fixtures that seed data)."""
        if self._outer is None:
            raise LifecycleError(f"isolated database {self.name!r} is not started")
        return self._outer

    @contextlib.asynccontextmanager
    async def _lend(self, site: str) -> AsyncIterator[AsyncConnection]:
        outer = self.outer_connection
        if asyncio.get_running_loop() is not self._loop:
            raise LifecycleError(
                f"isolated database {self.name!r} was started on another event loop: its "
                "connection cannot serve this one. Run the app on the test's loop "
                "(pooltender.testing.async_client), or give TestClient a factory "
                "(override_databases(app, lambda: Databases({...: IsolatedDatabase(...)})))"
            )
        await self._acquire(site)
        token = object()
        self.checkout_tracker.acquire(token, site=site)
        self._holder = Held(0, site, time.monotonic())
        try:
            yield outer
        finally:
            self._holder = None
            self.checkout_tracker.release(token)
            assert self._lock is not None
            self._lock.release()

    async def _acquire(self, site: str) -> None:
        """Take the one connection; fail when one holder keeps it ``lend_timeout`` seconds."""
        lock = self._lock
        assert lock is not None
        while True:
            holder = self._holder
            left = self.lend_timeout - (time.monotonic() - holder.since) if holder else None
            try:
                await asyncio.wait_for(lock.acquire(), left if left is None else max(left, 0.0))
                return
            except TimeoutError:
                if self._holder is not holder:  # it changed hands: others are served, wait on
                    continue
                raise self._deadlock(site, holder) from None

    def _deadlock(self, site: str, holder: Held | None) -> LifecycleError:
        held = f"since {holder.site}, {holder.age:.1f}s ago" if holder else "by an earlier user"
        return LifecycleError(
            f"isolated database {self.name!r}: {site} waited {self.lend_timeout:g}s for the one "
            f"connection, held {held}: a session (or connection) held open while the app "
            "serves a request of the same test deadlocks. Close it before the request, or "
            "seed the data through db.outer_connection (the outer transaction itself, no "
            "session to hold open); IsolatedDatabase(lend_timeout=...) sets this bound"
        )

    @contextlib.asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A session inside a SAVEPOINT of the outer transaction; same contract as
        :meth:`Database.session` (commit on success, roll back on error)."""
        async with self._lend(checkout_site()), super().session() as session:
            yield session

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[AsyncConnection]:
        """The outer connection inside a SAVEPOINT, released on success, rolled back on error."""
        async with self._lend(checkout_site()), super().connection() as connection:
            yield connection

    @contextlib.asynccontextmanager
    async def read_connection(self) -> AsyncIterator[AsyncConnection]:
        """As :meth:`connection`: inside the outer transaction nothing can autocommit."""
        async with self._lend(checkout_site()), super().read_connection() as connection:
            yield connection

    def sync_session(self) -> Any:
        raise LifecycleError(
            f"isolated database {self.name!r} is async only: use session() with an async driver"
        )
