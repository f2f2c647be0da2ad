"""``Database``: one named engine with its sessions, admission gate and lifecycle.

The constructor does no I/O; ``start()`` builds the engine, verifies connectivity with
bounded retries and warms the pool; ``stop()`` disposes it. A stopped database is not
restarted (build a new one). The named set of a service is
:class:`pooltender.databases.Databases`.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any, TypeVar

import anyio
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import Pool, QueuePool

from .engine import build_engine, describe_error
from .errors import (
    DatabaseUnavailable,
    LifecycleError,
    PoolOverloaded,
    StartupError,
)
from .monitor import PoolMonitor, Watchdog, pool_snapshot
from .pool import Admission, would_wait
from .readonly import read_only_session_class
from .settings import DatabaseSettings, PooltenderSettings

__all__ = ["Database", "DatabaseState"]

logger = logging.getLogger("pooltender")

T = TypeVar("T")

# Strong references to clean-up tasks that outlive a cancelled caller.
_cleanups: set[asyncio.Task[Any]] = set()


class DatabaseState(enum.Enum):
    NEW = "new"
    STARTED = "started"
    STOPPED = "stopped"


class Database:
    """One database: its engine, its sessions, its admission gate.

    >>> db = Database(DatabaseSettings(url="sqlite+aiosqlite:///app.db"))
    >>> await db.start()
    >>> async with db.session() as session:   # commits on success, rolls back on error
    ...     await session.execute(...)
    >>> await db.stop()
    """

    BUSY_GRACE = 10.0
    """Seconds after a successful checkout during which an exhausted pool counts as ready."""

    def __init__(
        self, settings: DatabaseSettings, *, options: PooltenderSettings | None = None
    ) -> None:
        self.settings = settings
        self.name = settings.name
        self.options = options
        self.monitor = PoolMonitor(settings.name, leak_threshold=settings.leak_threshold)
        self.admission = Admission(
            settings.name,
            wait_limit=settings.wait_limit,
            retry_after=settings.retry_after,
            on_wait=self.monitor.on_wait,
        )
        self._watchdog: Watchdog | None = None
        self._state = DatabaseState.NEW
        self._engine: AsyncEngine | Engine | None = None
        self._sessionmaker: async_sessionmaker[AsyncSession] | None = None
        self._sync_sessionmaker: sessionmaker[Session] | None = None

    def __repr__(self) -> str:
        return f"<Database {self.name!r} {self.settings.host} {self._state.value}>"

    # -- properties -------------------------------------------------------------------

    @property
    def state(self) -> DatabaseState:
        return self._state

    @property
    def is_async(self) -> bool:
        return self.settings.is_async

    @property
    def engine(self) -> AsyncEngine:
        """The async engine (the URL names an async driver)."""
        engine = self._started_engine()
        if not isinstance(engine, AsyncEngine):
            raise LifecycleError(
                f"database {self.name!r} uses the sync driver {self.settings.driver.drivername!r}:"
                " use .sync_engine / sync_session(), or an async driver in the URL"
            )
        return engine

    @property
    def sync_engine(self) -> Engine:
        """The sync engine (the URL names a sync driver, or ``DATABASE_SYNC=true``)."""
        engine = self._started_engine()
        if isinstance(engine, AsyncEngine):
            raise LifecycleError(
                f"database {self.name!r} uses the async driver "
                f"{self.settings.driver.drivername!r}: use .engine / session(), or a sync driver"
            )
        return engine

    def _started_engine(self) -> AsyncEngine | Engine:
        if self._state is not DatabaseState.STARTED or self._engine is None:
            raise LifecycleError(f"database {self.name!r} is {self._state.value}, not started")
        return self._engine

    # -- lifecycle --------------------------------------------------------------------

    async def start(self) -> None:
        """Build the engine, verify connectivity (bounded retries), warm the pool.

        If the database stays unreachable, raise :class:`StartupError` (``start_mode``
        ``strict``, the default), or log it and start anyway (``degraded``).
        """
        if self._state is DatabaseState.STARTED:
            return
        if self._state is DatabaseState.STOPPED:
            raise LifecycleError(f"database {self.name!r} was stopped; build a new Database")
        options = self.options if self.options is not None else PooltenderSettings()
        if not options.monitor:
            self.admission.on_wait = None
        engine = build_engine(
            self.settings,
            admission=self.admission,
            on_connect_time=self.monitor.on_connect_time if options.monitor else None,
        )
        self._engine = engine
        if options.monitor:
            self.monitor.attach(engine.sync_engine if isinstance(engine, AsyncEngine) else engine)
        session_class = (
            read_only_session_class(self.settings) if self.settings.read_only else Session
        )
        if isinstance(engine, AsyncEngine):
            self._sessionmaker = async_sessionmaker(
                engine, expire_on_commit=False, sync_session_class=session_class
            )
        else:
            self._sync_sessionmaker = sessionmaker(
                engine, expire_on_commit=False, class_=session_class
            )
        degraded = self.settings.start_mode == "degraded"
        try:
            await self._verify(attempts=1 if degraded else self.settings.connect_retries + 1)
            await self._warm()
        except StartupError as exc:
            if not degraded:
                await self._dispose()
                self._engine = None
                raise
            # Degraded start: serve anyway. Each request that needs this database answers
            # 503 and /health/ready fails until it is reachable; the pool connects then.
            logger.warning(
                "%s; started degraded (DATABASE_START_MODE=degraded): requests needing it "
                "answer 503 until it is reachable",
                exc,
            )
        except BaseException:
            await self._dispose()
            self._engine = None
            raise
        self._state = DatabaseState.STARTED
        if options.monitor:
            self._watchdog = Watchdog.acquire(
                self.monitor,
                loop_block_threshold=options.loop_block_threshold,
                health_log_interval=options.health_log_interval,
                health_line=self.health_line,
            )
        logger.info(
            "database %r started: %s, pool %s",
            self.name,
            self.settings.host,
            _describe_pool(self.settings),
        )

    async def stop(self) -> None:
        """Dispose the engine; every idle connection is closed. Idempotent."""
        if self._state is not DatabaseState.STARTED:
            self._state = DatabaseState.STOPPED
            return
        self._state = DatabaseState.STOPPED
        self.admission.burst_log.flush()
        await self._dispose()
        if self._watchdog is not None:
            await asyncio.to_thread(self._watchdog.release, self.monitor)
            self._watchdog = None
        logger.info("database %r stopped", self.name)

    async def _dispose(self) -> None:
        engine = self._engine
        if isinstance(engine, AsyncEngine):
            await engine.dispose()
        elif engine is not None:
            await asyncio.to_thread(engine.dispose)

    async def _verify(self, attempts: int) -> None:
        delay = 0.25
        last: BaseException | None = None
        for attempt in range(attempts):
            try:
                await self._ping_once(self.settings.connect_timeout + 1)
                return
            except Exception as exc:  # refused, timed out, authentication failed, ...
                last = exc
            if attempt + 1 < attempts:
                logger.warning(
                    "database %r at %s not reachable (attempt %d of %d), retrying in %.2fs",
                    self.name,
                    self.settings.host,
                    attempt + 1,
                    attempts,
                    delay,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
        password = self.settings.url.password
        cause = last.__cause__ if isinstance(last, DatabaseUnavailable) else last
        reason = (
            describe_error(cause, str(password) if password else None) if cause else "timed out"
        )
        raise StartupError(self.name, self.settings.host, reason) from None

    async def _ping_once(self, timeout: float) -> None:
        engine = self._engine
        if isinstance(engine, AsyncEngine):

            async def ping() -> None:
                async with engine.connect() as connection:
                    await connection.execute(text("SELECT 1"))

            await asyncio.wait_for(ping(), timeout)
        elif engine is not None:
            sync_engine = engine

            def sync_ping() -> None:
                with sync_engine.connect() as connection:
                    connection.execute(text("SELECT 1"))

            await asyncio.wait_for(asyncio.to_thread(sync_ping), timeout)

    async def _warm(self) -> None:
        """Open ``warmup`` connections (default ``pool_size``) at once, then return them."""
        wanted = self.settings.warmup
        if wanted is None:
            wanted = 1 if self.settings.is_sqlite_memory else self.settings.pool_size
        capacity = self.settings.max_connections
        if capacity is not None:
            wanted = min(wanted, capacity)
        if wanted <= 1:
            return  # _verify already opened and returned one
        engine = self._engine
        try:
            if isinstance(engine, AsyncEngine):
                async with contextlib.AsyncExitStack() as stack:
                    await asyncio.gather(
                        *(stack.enter_async_context(engine.connect()) for _ in range(wanted))
                    )
            elif engine is not None:
                await asyncio.to_thread(_warm_sync, engine, wanted)
        except Exception as exc:  # the database answered _verify: a partial warm-up is fine
            logger.warning("database %r: warm-up stopped early: %s", self.name, exc)

    # -- sessions ---------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """An :class:`AsyncSession`: commit on success, roll back on any exception
        (cancellation included), connection always returned to the pool.

        When the pool is exhausted and its wait queue full, raises
        :class:`PoolOverloaded` at once, before the caller's work starts (the session
        would otherwise be refused at its first statement).
        """
        self.engine  # noqa: B018 - raises LifecycleError unless started on an async driver
        assert self._sessionmaker is not None
        self.admit()  # fail fast, before the caller's work starts
        session = self._sessionmaker()
        try:
            yield session
            await session.commit()
        except BaseException:
            await _finish(session.rollback)
            raise
        finally:
            await _finish(session.close)

    @contextlib.contextmanager
    def sync_session(self) -> Iterator[Session]:
        """A sync :class:`Session` with the same commit/rollback contract."""
        self.sync_engine  # noqa: B018 - raises LifecycleError unless started on a sync driver
        assert self._sync_sessionmaker is not None
        with self._sync_sessionmaker() as session:
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[AsyncConnection]:
        """A Core :class:`AsyncConnection` inside a transaction (Core, no ORM)."""
        connection = await self.engine.connect()
        try:
            await connection.begin()
            yield connection
            await connection.commit()
        except BaseException:
            await _finish(connection.rollback)
            raise
        finally:
            await _finish(connection.close)

    @contextlib.asynccontextmanager
    async def read_connection(self) -> AsyncIterator[AsyncConnection]:
        """A Core :class:`AsyncConnection` in autocommit mode: the fastest path for reads.

        No ``BEGIN``/``COMMIT`` round trips: each statement runs in its own implicit
        transaction, so several reads may see different snapshots. Nothing makes the
        connection read-only; a write through it is committed at once, never rolled back.
        """
        connection = await self.engine.connect()
        try:
            await connection.execution_options(isolation_level="AUTOCOMMIT")
            yield connection
        finally:
            await _finish(connection.close)

    def saturated(self) -> bool:
        """True when a checkout now would be refused at once (:class:`PoolOverloaded`)."""
        pool = self._current_pool()
        return isinstance(pool, QueuePool) and self.admission.saturated(pool)

    def admit(self) -> None:
        """Raise :class:`PoolOverloaded` now if a checkout now would be refused."""
        pool = self._current_pool()
        if isinstance(pool, QueuePool):
            self.admission.admit(pool)

    async def ping(self, timeout: float = 2.0) -> None:
        """``SELECT 1`` within ``timeout`` seconds; raises on failure."""
        self._started_engine()
        await self._ping_once(timeout)

    async def ready(self, timeout: float = 2.0) -> str:
        """``"ok"`` after a ``SELECT 1`` within ``timeout``; ``"busy"`` for an exhausted pool.

        A ping never queues behind requests: when no connection is idle and none may
        be opened, the database counts as reachable if a checkout succeeded in the
        last :attr:`BUSY_GRACE` seconds (the pool is busy, not broken), and as
        overloaded otherwise. Raises :class:`DatabaseUnavailable` (or the timeout).
        """
        pool = self._current_pool()
        if isinstance(pool, QueuePool) and would_wait(pool):
            idle_for = time.monotonic() - self.monitor.last_checkout
            if idle_for <= self.BUSY_GRACE:
                return "busy"
            raise PoolOverloaded(
                self.name,
                f"database {self.name!r}: every connection is in use and none was checked out "
                f"in the last {idle_for:.0f}s",
                retry_after=self.settings.retry_after,
            )
        await self.ping(timeout)
        return "ok"

    def _current_pool(self) -> Pool | None:
        engine = self._engine
        if engine is None or self._state is not DatabaseState.STARTED:
            return None
        return engine.sync_engine.pool if isinstance(engine, AsyncEngine) else engine.pool

    def stats(self) -> dict[str, Any]:
        """This database's snapshot (the per-database dict of ``GET /debug/pool-stats``).

        Reads counters and the held table; no I/O, safe from any thread.
        """
        return pool_snapshot(self.settings, self._current_pool(), self.admission, self.monitor)

    def health_line(self) -> str:
        """One ``key=value`` line on the pool's health (the periodic health log)."""
        s = self.stats()
        return (
            f"pool database={self.name} size={s['pool_size']} checked_out={s['checked_out']} "
            f"available={s['available']} overflow={s['overflow']} max={s['max']} "
            f"waiting={s['waiting']} timeouts={s['timeouts']} rejected={s['rejected']} "
            f"leaks_suspected={s['leaks_suspected']} checkouts={s['checkouts']} "
            f"wait_p99={s['wait_time']['p99']:.4f} use_p99={s['use_time']['p99']:.4f}"
        )


async def _finish(step: Callable[[], Awaitable[None]]) -> None:
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


def _warm_sync(engine: Engine, wanted: int) -> None:
    with contextlib.ExitStack() as stack:
        for _ in range(wanted):
            stack.enter_context(engine.connect())


def _describe_pool(settings: DatabaseSettings) -> str:
    if settings.is_sqlite_memory:
        return "1 shared in-memory connection"
    limit = settings.max_connections
    waiting = settings.wait_limit
    return (
        f"size {settings.pool_size} + overflow {settings.max_overflow}"
        f" (max {limit if limit is not None else 'unbounded'}),"
        f" waiting {waiting if waiting is not None else 'unbounded'},"
        f" timeout {settings.pool_timeout:g}s"
    )
