"""``Database``: one named engine with its sessions, admission gate and lifecycle.

``Databases``: the named set (``primary``, ``analytics``, ...), started and stopped
together. Constructors do no I/O; ``start()`` builds the engine, verifies
connectivity with bounded retries and warms the pool; ``stop()`` disposes it.
A stopped database is not restarted (build a new one).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from typing import Any, TypeVar

import anyio
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session, sessionmaker

from .engine import build_engine, describe_error
from .errors import ConfigurationError, DatabaseUnavailable, LifecycleError, StartupError
from .pool import Admission
from .settings import PRIMARY, DatabaseSettings, load_database_settings

__all__ = ["Database", "DatabaseState", "Databases"]

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

    def __init__(self, settings: DatabaseSettings) -> None:
        self.settings = settings
        self.name = settings.name
        self.admission = Admission(
            settings.name, wait_limit=settings.wait_limit, retry_after=settings.retry_after
        )
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
        """Build the engine, verify connectivity (bounded retries), warm the pool."""
        if self._state is DatabaseState.STARTED:
            return
        if self._state is DatabaseState.STOPPED:
            raise LifecycleError(f"database {self.name!r} was stopped; build a new Database")
        engine = build_engine(self.settings, admission=self.admission)
        self._engine = engine
        if isinstance(engine, AsyncEngine):
            self._sessionmaker = async_sessionmaker(engine, expire_on_commit=False)
        else:
            self._sync_sessionmaker = sessionmaker(engine, expire_on_commit=False)
        try:
            await self._verify()
            await self._warm()
        except BaseException:
            await self._dispose()
            self._engine = None
            raise
        self._state = DatabaseState.STARTED
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
        logger.info("database %r stopped", self.name)

    async def _dispose(self) -> None:
        engine = self._engine
        if isinstance(engine, AsyncEngine):
            await engine.dispose()
        elif engine is not None:
            await asyncio.to_thread(engine.dispose)

    async def _verify(self) -> None:
        attempts = self.settings.connect_retries + 1
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
        (cancellation included), connection always returned to the pool."""
        maker = self._sessionmaker
        if maker is None:
            self.engine  # noqa: B018 - raises the right LifecycleError
            raise AssertionError("unreachable")
        session = maker()
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
        maker = self._sync_sessionmaker
        if maker is None:
            self.sync_engine  # noqa: B018 - raises the right LifecycleError
            raise AssertionError("unreachable")
        with maker() as session:
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[AsyncConnection]:
        """A Core :class:`AsyncConnection` inside a transaction (the fast path)."""
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

    async def ping(self, timeout: float = 2.0) -> None:
        """``SELECT 1`` within ``timeout`` seconds; raises on failure."""
        self._started_engine()
        await self._ping_once(timeout)


async def _finish(step: Callable[[], Awaitable[None]]) -> None:
    """Run a clean-up step to the end even if the caller is being cancelled.

    Shielded from anyio cancel scopes; a native ``Task.cancel()`` is absorbed by
    ``asyncio.shield`` and the step completes in its own task.
    """
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


class Databases(Mapping[str, Database]):
    """The named databases of a service, started and stopped together."""

    def __init__(self, databases: Mapping[str, Database] | None = None) -> None:
        self._databases: dict[str, Database] = dict(databases or {})

    @classmethod
    def from_settings(cls, settings: Mapping[str, DatabaseSettings]) -> Databases:
        return cls({name: Database(s) for name, s in settings.items()})

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str] | None = None,
        *,
        env_file: str | None = ".env",
        defaults: Mapping[str, str] | None = None,
    ) -> Databases:
        """Every database configured by ``DATABASE_*`` variables (see the README)."""
        settings = load_database_settings(environ, env_file=env_file, defaults=defaults)
        if PRIMARY not in settings:
            raise ConfigurationError("DATABASE_URL", "is not set")
        return cls.from_settings(settings)

    def __getitem__(self, name: str) -> Database:
        try:
            return self._databases[name]
        except KeyError:
            known = ", ".join(sorted(self._databases)) or "none"
            raise KeyError(
                f"no database {name!r} (configured: {known}); set DATABASE_{name.upper()}_URL"
            ) from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._databases)

    def __len__(self) -> int:
        return len(self._databases)

    def __repr__(self) -> str:
        return f"<Databases {list(self._databases.values())!r}>"

    @property
    def primary(self) -> Database:
        return self[PRIMARY]

    async def start(self) -> None:
        """Start every database concurrently; if one fails, stop the others and raise."""
        results = await asyncio.gather(
            *(db.start() for db in self._databases.values()), return_exceptions=True
        )
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            await self.stop()
            raise errors[0]

    async def stop(self) -> None:
        await asyncio.gather(*(db.stop() for db in self._databases.values()))
