"""``Database``: one named database's lifecycle, with its pool, monitor and sessions.

The constructor does no I/O; ``start()`` builds the engine, verifies connectivity with
bounded retries and warms the pool; ``stop()`` disposes it. A stopped database is not
restarted (build a new one). The named set of a service is
:class:`pooltender.databases.Databases`; sessions are :mod:`pooltender.sessions`;
readiness is :mod:`pooltender.readiness`; the snapshot is :mod:`pooltender.snapshot`.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
from collections.abc import Mapping
from typing import Protocol

from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session
from sqlalchemy.orm import sessionmaker as SyncSessionMaker

from .adopt import Adoption, adopted_settings
from .engine import build_engine, describe_error
from .errors import CompatibilityError, DatabaseUnavailable, LifecycleError, StartupError
from .failover import FailoverDetector
from .monitor import PoolMonitor, Watchdog
from .pool import GatedPool, WaitQueue
from .readonly import read_only_session_class
from .secrets import credentials
from .serverinfo import usable_slots
from .sessions import AsyncSessions, SyncSessions
from .settings import PRIMARY, DatabaseSettings, PooltenderSettings
from .snapshot import pool_stats
from .stats import PoolStats

__all__ = ["Database", "DatabaseState"]

logger = logging.getLogger("pooltender")


class DatabaseState(enum.Enum):
    NEW = "new"
    STARTED = "started"
    STOPPED = "stopped"


class _Face(Protocol):
    """What the lifecycle does with an engine, async or sync alike."""

    @property
    def pool(self) -> GatedPool | None: ...

    async def ping(self, timeout: float) -> None: ...

    async def server_slots(self) -> int | None: ...

    async def open(self, count: int) -> tuple[int, BaseException | None]: ...

    async def dispose(self) -> None: ...


class _AsyncFace:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    @property
    def pool(self) -> GatedPool | None:
        pool = self.engine.sync_engine.pool
        return pool if isinstance(pool, GatedPool) else None

    async def ping(self, timeout: float) -> None:
        async def ping() -> None:
            async with self.engine.connect() as connection:
                await connection.execute(text("SELECT 1"))

        await asyncio.wait_for(ping(), timeout)

    async def server_slots(self) -> int | None:
        async with self.engine.connect() as connection:
            return await connection.run_sync(usable_slots)

    async def open(self, count: int) -> tuple[int, BaseException | None]:
        """Open ``count`` connections at once, then return them all to the pool: how many
        opened, and the first failure.

        Every attempt is waited for, a failed one too, and every connection that opened is
        returned, also when the others failed (a server that takes 4 of 8) or the start is
        cancelled: none is left for the garbage collector, which would report it as a leak
        of whoever started the app.
        """
        tasks = [asyncio.ensure_future(self.engine.connect().start()) for _ in range(count)]
        try:
            await asyncio.wait(tasks)
        finally:
            for task in tasks:
                task.cancel()  # only those still running: a cancelled start
            await asyncio.wait(tasks)
            opened = [t.result() for t in tasks if not t.cancelled() and t.exception() is None]
            for connection in opened:
                await connection.close()
        failures = [t.exception() for t in tasks if not t.cancelled() and t.exception()]
        return len(opened), failures[0] if failures else None

    async def dispose(self) -> None:
        await self.engine.dispose()


class _SyncFace:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @property
    def pool(self) -> GatedPool | None:
        pool = self.engine.pool
        return pool if isinstance(pool, GatedPool) else None

    async def ping(self, timeout: float) -> None:
        def ping() -> None:
            with self.engine.connect() as connection:
                connection.execute(text("SELECT 1"))

        await asyncio.wait_for(asyncio.to_thread(ping), timeout)

    async def server_slots(self) -> int | None:
        def read() -> int | None:
            with self.engine.connect() as connection:
                return usable_slots(connection)

        return await asyncio.to_thread(read)

    async def open(self, count: int) -> tuple[int, BaseException | None]:
        def open_all() -> tuple[int, BaseException | None]:
            with contextlib.ExitStack() as stack:  # returns every one that opened
                for opened in range(count):
                    try:
                        stack.enter_context(self.engine.connect())
                    except Exception as exc:
                        return opened, exc
                return count, None

        return await asyncio.to_thread(open_all)

    async def dispose(self) -> None:
        await asyncio.to_thread(self.engine.dispose)


class Database:
    """One database: its engine, pool, monitor and sessions, started and stopped.

    >>> db = Database(DatabaseSettings(url="sqlite+aiosqlite:///app.db"))
    >>> await db.start()
    >>> async with db.session() as session:   # commits on success, rolls back on error
    ...     await session.execute(...)
    >>> await db.stop()

    ``pooltender_settings``: the process-wide ``POOLTENDER_*`` settings (default: their
    defaults; :meth:`Databases.from_env` reads them from the environment).

    ``engine``: an engine the app built itself, adopted instead of building one
    (:meth:`adopt` derives its settings; see :mod:`pooltender.adopt`).
    """

    def __init__(
        self,
        settings: DatabaseSettings,
        *,
        pooltender_settings: PooltenderSettings | None = None,
        engine: AsyncEngine | Engine | None = None,
    ) -> None:
        self.settings = settings
        self.name = settings.name
        self.pooltender_settings = pooltender_settings or PooltenderSettings()
        self.monitor = PoolMonitor(settings.name, leak_threshold=settings.leak_threshold)
        self.wait_queue = WaitQueue(
            settings.name, limit=settings.wait_limit, retry_after=settings.retry_after
        )
        self.failover = FailoverDetector(settings)
        """Failover detection (:mod:`pooltender.failover`): its server generation and count."""
        self.sessions: AsyncSessions | None = None
        """The async session factories once started (async drivers). A subclass may bind
        them elsewhere after :meth:`start` (the test kit binds them to one transaction)."""
        self.sync_sessions: SyncSessions | None = None
        """The sync session factory once started (sync drivers)."""
        self.server_slots: int | None = None
        """The server's usable connection slots, read at start (``None``: unknown, no
        limit, or behind PgBouncer, whose own limit is what counts there)."""
        self._watchdog: Watchdog | None = None
        self._state = DatabaseState.NEW
        self._engine: AsyncEngine | Engine | None = None
        self._face: _Face | None = None
        self._adoption = Adoption(engine) if engine is not None else None

    @classmethod
    def adopt(
        cls,
        engine: AsyncEngine | Engine,
        name: str = PRIMARY,
        *,
        pooltender_settings: PooltenderSettings | None = None,
        environ: Mapping[str, str] | None = None,
        env_file: str | None = ".env",
    ) -> Database:
        """The database of an engine the app built (``create_async_engine(...)``): its
        own pool options, each overridden by its ``DATABASE_*`` variable where set.

        Between :meth:`start` and :meth:`stop` every checkout through ``engine`` (the
        app's own sessionmakers included) is gated and monitored; :meth:`stop` closes
        pooltender's connections and gives the engine its own pool back.
        """
        settings = adopted_settings(engine, name, environ=environ, env_file=env_file)
        return cls(settings, pooltender_settings=pooltender_settings, engine=engine)

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

    @property
    def pool(self) -> GatedPool | None:
        """The pool while started (``None`` before start and after stop)."""
        if self._state is not DatabaseState.STARTED or self._face is None:
            return None
        return self._face.pool

    @property
    def sessionmaker(self) -> async_sessionmaker[AsyncSession]:
        """The :class:`async_sessionmaker` of this database, for code that opens its own
        sessions (``async with maker.begin() as session: ...``)."""
        return self._async_sessions().sessionmaker

    @property
    def sync_sessionmaker(self) -> SyncSessionMaker[Session]:
        """The :class:`sessionmaker` of a sync database."""
        return self._sync_sessions().sessionmaker

    def _started_engine(self) -> AsyncEngine | Engine:
        if self._state is not DatabaseState.STARTED or self._engine is None:
            raise LifecycleError(f"database {self.name!r} is {self._state.value}, not started")
        return self._engine

    def _async_sessions(self) -> AsyncSessions:
        self.engine  # noqa: B018 - raises LifecycleError unless started on an async driver
        assert self.sessions is not None
        return self.sessions

    def _sync_sessions(self) -> SyncSessions:
        self.sync_engine  # noqa: B018 - raises LifecycleError unless started on a sync driver
        assert self.sync_sessions is not None
        return self.sync_sessions

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
        monitored = self.pooltender_settings.monitor
        on_connect_time = self.monitor.on_connect_time if monitored else None
        on_wait = self.monitor.on_wait if monitored else None
        engine: AsyncEngine | Engine
        if self._adoption:  # the app's own engine: its options and listeners stand
            engine = self._adoption.attach(
                self.settings,
                wait_queue=self.wait_queue,
                on_connect_time=on_connect_time,
                on_wait=on_wait,
                failover=self.failover,
            )
        else:
            engine = build_engine(
                self.settings,
                wait_queue=self.wait_queue,
                on_connect_time=on_connect_time,
                on_wait=on_wait,
                failover=self.failover,
            )
        self._engine = engine
        sync_engine = engine.sync_engine if isinstance(engine, AsyncEngine) else engine
        if monitored:
            self.monitor.attach(sync_engine)
        session_class = (
            read_only_session_class(self.settings) if self.settings.read_only else Session
        )
        if isinstance(engine, AsyncEngine):
            self._face = _AsyncFace(engine)
            self.sessions = AsyncSessions(engine, session_class=session_class, refuse=self.admit)
        else:
            self._face = _SyncFace(engine)
            self.sync_sessions = SyncSessions(
                engine, session_class=session_class, refuse=self.admit
            )
        degraded = self.settings.start_mode == "degraded"
        try:
            await self._verify(attempts=1 if degraded else self.settings.connect_retries + 1)
            await self._read_server_slots()
            await self._warm()
        except StartupError as exc:
            if not degraded:
                await self._dispose()
                self._engine = self._face = None
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
            self._engine = self._face = None
            raise
        self._state = DatabaseState.STARTED
        if monitored:
            self._watchdog = Watchdog.acquire(
                self.monitor,
                loop_block_threshold=self.pooltender_settings.loop_block_threshold,
                health_log_interval=self.pooltender_settings.health_log_interval,
                health_line=lambda: self.stats().health_line(),
            )
        logger.info(
            "database %r started: %s, pool %s", self.name, self.settings.host, self._describe()
        )

    async def stop(self) -> None:
        """Dispose the engine; every idle connection is closed. Idempotent."""
        if self._state is not DatabaseState.STARTED:
            self._state = DatabaseState.STOPPED
            return
        self._state = DatabaseState.STOPPED
        self.wait_queue.burst_log.flush()
        await self._dispose()
        if self._watchdog is not None:
            await asyncio.to_thread(self._watchdog.release, self.monitor)
            self._watchdog = None
        logger.info("database %r stopped", self.name)

    async def _dispose(self) -> None:
        """Close the pool's connections; an adopted engine gets its own pool back."""
        if self._adoption is not None:
            await self._adoption.release()
        elif self._face is not None:
            await self._face.dispose()

    async def _verify(self, attempts: int) -> None:
        assert self._face is not None
        delay = 0.25
        last: BaseException | None = None
        for attempt in range(attempts):
            try:
                await self._face.ping(self.settings.connect_timeout + 1)
                return
            except CompatibilityError:
                raise  # not a connectivity problem: retrying cannot help
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
        cause = (last.__cause__ or last) if isinstance(last, DatabaseUnavailable) else last
        secrets = credentials(self.settings.url)
        reason = describe_error(cause, secrets) if cause else "timed out"
        raise StartupError(self.name, self.settings.host, reason) from None

    async def _read_server_slots(self) -> None:
        assert self._face is not None
        if self.settings.pgbouncer or self.settings.driver.backend == "sqlite":
            return  # PgBouncer's own limit is what counts there; SQLite has none
        try:
            self.server_slots = await asyncio.wait_for(
                self._face.server_slots(), self.settings.connect_timeout + 1
            )
        except Exception as exc:  # a permission or a proxy that does not answer it
            logger.info(
                "database %r: could not read the server's connection limit: %s",
                self.name,
                describe_error(exc, credentials(self.settings.url)),
            )

    async def _warm(self) -> None:
        """Open ``warmup`` connections (default ``pool_size``) at once, then return them."""
        assert self._face is not None
        wanted = self.settings.warmup
        if wanted is None:
            wanted = 1 if self.settings.is_sqlite_memory else self.settings.pool_size
        capacity = self.settings.max_connections
        if capacity is not None:
            wanted = min(wanted, capacity)
        if wanted <= 1:
            return  # _verify already opened and returned one
        opened, failure = await self._face.open(wanted)
        if failure is not None:  # the database answered _verify: a partial warm-up is fine
            logger.warning(
                "database %r: warm-up opened %d of %d connections: %s",
                self.name,
                opened,
                wanted,
                describe_error(failure, credentials(self.settings.url)),
            )

    def _describe(self) -> str:
        settings = self.settings
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

    # -- sessions ---------------------------------------------------------------------

    def session(self) -> contextlib.AbstractAsyncContextManager[AsyncSession]:
        """An :class:`AsyncSession`: commit on success, roll back on any exception
        (cancellation included), connection always returned to the pool.

        When the pool is exhausted and its wait queue full, raises
        :class:`PoolOverloaded` at once, before the caller's work starts.
        """
        return self._async_sessions().session()

    def connection(self) -> contextlib.AbstractAsyncContextManager[AsyncConnection]:
        """A Core :class:`AsyncConnection` inside a transaction (Core, no ORM)."""
        return self._async_sessions().connection()

    def read_connection(self) -> contextlib.AbstractAsyncContextManager[AsyncConnection]:
        """A Core :class:`AsyncConnection` in autocommit mode: the fastest path for reads."""
        return self._async_sessions().read_connection()

    def sync_session(self) -> contextlib.AbstractContextManager[Session]:
        """A sync :class:`Session` with the same commit/rollback contract."""
        return self._sync_sessions().session()

    # -- admission ----------------------------------------------------------------------

    def saturated(self) -> bool:
        """True when a checkout now would be refused at once (:class:`PoolOverloaded`)."""
        pool = self.pool
        return pool is not None and pool.would_refuse()

    def admit(self) -> None:
        """Raise :class:`PoolOverloaded` now if a checkout now would be refused."""
        pool = self.pool
        if pool is not None:
            pool.refuse_if_saturated()

    # -- health -------------------------------------------------------------------------

    async def ping(self, timeout: float = 2.0) -> None:
        """``SELECT 1`` within ``timeout`` seconds; raises on failure."""
        self._started_engine()
        assert self._face is not None
        await self._face.ping(timeout)

    def stats(self) -> PoolStats:
        """This database's snapshot. Reads counters and the held table; no I/O, safe
        from any thread."""
        return pool_stats(self)
