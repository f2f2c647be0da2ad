"""Build a SQLAlchemy engine from :class:`DatabaseSettings`: per-dialect options only.

- Only the pool options the user set reach SQLAlchemy, plus pooltender's deliberate
  default ``pool_recycle=3600``; the pre-ping (on by default) is pooltender's own
  checkout event (:mod:`pooltender.ping`).
- Connections are recycled by pooltender (:mod:`pooltender.recycle`: a random 0-10 %
  shorter lifetime each, a bounded pace), so SQLAlchemy's own ``pool_recycle`` is off.
- Failover detection (:mod:`pooltender.failover`) on a database not declared read-only.
- A multi-host PostgreSQL URL (``?host=db1:5432&host=db2:5432``) of a database that is
  not read-only gets ``target_session_attrs=read-write`` unless it names one: new
  connections go to the writable host (asyncpg and libpq both implement it).
- A connect timeout always, so a dead host cannot hang a worker.
- A server-side statement timeout where the dialect has one.
- SQLite: a file database gets WAL and a busy timeout; an in-memory database lives
  and dies with its one connection, so the pool holds exactly that one and lends it
  to one user at a time (two users would otherwise interleave their transactions).
- A read-only database (``DATABASE_<NAME>_READ_ONLY``): every transaction is READ ONLY
  on the server (PostgreSQL, MySQL/MariaDB) or the connection is ``query_only`` (SQLite).
- PgBouncer (transaction mode): no server-side prepared statement outlives a
  transaction, and no startup parameter PgBouncer would refuse.
- A failure to open a connection becomes :class:`DatabaseUnreachable` naming the
  database and host, never a credential.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any

from sqlalchemy import create_engine, event
from sqlalchemy.engine import URL, Dialect, Engine
from sqlalchemy.engine.interfaces import ExceptionContext
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry

from . import compat
from .deadline import DEADLINE_EXPIRED, psycopg_connect_args
from .errors import DatabaseUnreachable, DriverNotInstalled, StatementTimeout
from .failover import FailoverDetector
from .fork import dispose_after_fork
from .ping import install_pre_ping
from .pool import GatedAsyncQueuePool, GatedQueuePool, WaitQueue
from .recycle import install_recycle
from .secrets import credentials, mask, redact_url
from .settings import DatabaseSettings

__all__ = ["build_engine", "describe_error", "sqlalchemy_options", "writable_url"]

logger = logging.getLogger("pooltender.engine")

SQLITE_BUSY_TIMEOUT = 5.0

# Seconds the client waits past DATABASE_STATEMENT_TIMEOUT before it gives a statement up.
COMMAND_TIMEOUT_GRACE = 1.0


def sqlalchemy_options(settings: DatabaseSettings) -> dict[str, Any]:
    """The keyword arguments of SQLAlchemy's own that :func:`build_engine` passes to
    ``create_engine``: only what the user set, and ``pool_recycle``."""
    options: dict[str, Any] = {}
    if settings.is_sqlite_memory:
        options.update(pool_size=1, max_overflow=0, pool_recycle=-1, pool_pre_ping=False)
        if settings.is_set("pool_timeout"):
            options["pool_timeout"] = settings.pool_timeout
    else:
        for field in ("pool_size", "max_overflow", "pool_timeout"):
            if settings.is_set(field):
                options[field] = getattr(settings, field)
        # pooltender recycles (pooltender.recycle) when there is a lifetime to spread.
        options["pool_recycle"] = -1 if settings.pool_recycle > 0 else settings.pool_recycle
    options["connect_args"] = _connect_args(settings)
    if settings.read_only and settings.driver.backend == "postgresql":
        # Every transaction BEGINs READ ONLY: the server refuses any write.
        options["execution_options"] = {"postgresql_readonly": True}
    return options


def writable_url(settings: DatabaseSettings) -> URL:
    """The URL the engine connects with: the driver explicit, and a multi-host PostgreSQL
    URL of a database that is not read-only asking for the writable host."""
    url = settings.engine_url
    multi_host = len(settings.hosts) > 1
    if (
        multi_host
        and settings.driver.backend == "postgresql"
        and not settings.read_only
        and "target_session_attrs" not in url.query
    ):
        url = url.update_query_dict({"target_session_attrs": "read-write"})
    return url


def _connect_args(settings: DatabaseSettings) -> dict[str, Any]:
    driver = settings.driver
    timeout = settings.connect_timeout
    statement_ms = (
        int(settings.statement_timeout * 1000) if settings.statement_timeout is not None else None
    )
    args: dict[str, Any] = {}
    if driver.backend == "postgresql":
        if driver.name == "asyncpg":
            args["timeout"] = timeout
            if settings.pgbouncer:
                # No named prepared statement may outlive a transaction behind PgBouncer:
                # asyncpg's cache off, SQLAlchemy's cache off, unique statement names.
                args["statement_cache_size"] = 0
                args["prepared_statement_cache_size"] = 0
                args["prepared_statement_name_func"] = _unique_statement_name
                if statement_ms is not None:
                    # PgBouncer refuses unknown startup parameters: cancel client-side.
                    args["command_timeout"] = settings.statement_timeout
            elif statement_ms is not None:
                args["server_settings"] = {"statement_timeout": str(statement_ms)}
                # The server cancels first, with a clean error. The client-side timeout is
                # the backstop for a network that drops packets silently: the server's
                # answer never comes, and without it the request would hang for ever.
                args["command_timeout"] = statement_ms / 1000 + COMMAND_TIMEOUT_GRACE
        else:  # psycopg 3 / psycopg2
            args["connect_timeout"] = max(2, round(timeout))
            if settings.pgbouncer and driver.name != "psycopg2":
                args["prepare_threshold"] = None
            if statement_ms is not None and not settings.pgbouncer:
                args["options"] = f"-c statement_timeout={statement_ms}"
            if statement_ms is not None and settings.is_async and driver.name != "psycopg2":
                # psycopg has no command timeout: a deadline shuts a silent connection
                # down (see pooltender.deadline), as asyncpg's command_timeout does.
                grace = 0.0 if settings.pgbouncer else COMMAND_TIMEOUT_GRACE
                args.update(psycopg_connect_args(statement_ms / 1000 + grace))
    elif driver.backend == "sqlite":
        args["timeout"] = SQLITE_BUSY_TIMEOUT
        args["check_same_thread"] = False
    elif driver.backend in ("mysql", "mariadb"):
        args["connect_timeout"] = max(1, round(timeout))
    return args


def _unique_statement_name() -> str:
    return f"__pooltender_{uuid.uuid4().hex}__"


def build_engine(
    settings: DatabaseSettings,
    *,
    wait_queue: WaitQueue | None = None,
    on_connect_time: Callable[[float], None] | None = None,
    on_wait: Callable[[float], None] | None = None,
    failover: FailoverDetector | None = None,
) -> AsyncEngine | Engine:
    """A new engine for ``settings``: an :class:`AsyncEngine` when ``settings.is_async``.

    ``wait_queue`` bounds the wait for a connection (see :mod:`pooltender.pool`);
    ``on_connect_time`` receives the seconds each new connection took to open,
    ``on_wait`` those each checkout took; ``failover`` keeps the failover state (a new
    one by default; :class:`~pooltender.Database` passes its own, which its snapshot
    reads). No connection is opened here. A process
    forked from this one drops the engine's inherited connections (see
    :mod:`pooltender.fork`).
    """
    compat.verify()
    driver = settings.driver
    if not driver.installed():
        raise DriverNotInstalled(settings.variable("url"), driver.drivername, driver.package)
    options = sqlalchemy_options(settings)
    pool_options: dict[str, Any] = {"wait_queue": wait_queue, "on_wait": on_wait}
    if not settings.is_sqlite_memory:
        pool_options["overflow_idle_timeout"] = settings.overflow_idle_timeout
    url = writable_url(settings)
    engine: AsyncEngine | Engine
    if settings.is_async:
        engine = create_async_engine(url, poolclass=GatedAsyncQueuePool, **pool_options, **options)
        sync_engine = engine.sync_engine
    else:
        engine = sync_engine = create_engine(
            url, poolclass=GatedQueuePool, **pool_options, **options
        )
    if settings.pool_pre_ping and not settings.is_sqlite_memory:
        install_pre_ping(sync_engine, window=settings.pre_ping_window, begin=not settings.read_only)
    if options["pool_recycle"] == -1 and settings.pool_recycle > 0:
        install_recycle(sync_engine, settings.pool_recycle, settings.pool_size)
    (failover or FailoverDetector(settings)).install(sync_engine)
    _install_events(
        sync_engine, settings, on_connect_time, options["connect_args"].get("command_timeout")
    )
    dispose_after_fork(sync_engine)
    return engine


def _install_events(
    engine: Engine,
    settings: DatabaseSettings,
    on_connect_time: Callable[[float], None] | None,
    command_timeout: float | None,
    *,
    adopted: bool = False,
) -> None:
    """Error translation (and connection timing); then, unless the engine is an app's
    own (``adopted``: its connections keep the app's options), per-dialect options."""
    name, host = settings.name, settings.host
    secrets = credentials(settings.url)

    @event.listens_for(engine, "do_connect")
    def _connect(
        dialect: Dialect, record: ConnectionPoolEntry, cargs: Any, cparams: dict[str, Any]
    ) -> Any:
        start = time.perf_counter()
        try:
            connection = dialect.connect(*cargs, **cparams)
        except Exception as exc:
            raise DatabaseUnreachable(
                name,
                f"database {name!r} at {host} is unreachable: " + describe_error(exc, secrets),
                retry_after=settings.retry_after,
            ) from exc
        if on_connect_time is not None:
            on_connect_time(time.perf_counter() - start)
        return connection

    @event.listens_for(engine, "handle_error")
    def _lost(context: ExceptionContext) -> None:
        # A connection lost in the middle of a request: the pool invalidates it (and,
        # with pre-ping, replaces it on the next checkout); the caller gets a 503.
        if (
            command_timeout is not None
            and isinstance(context.original_exception, TimeoutError)
            and not context.is_pre_ping
        ):
            # No answer within the command timeout: the connection is in an unknown
            # state (a silent network drop looks exactly like this). Drop it at once
            # (a graceful close would wait for the same silent peer); 503.
            context.is_disconnect = True
            if context.connection is not None:
                driver_connection = context.connection.connection.driver_connection
                if driver_connection is not None:
                    driver_connection.terminate()
            raise DatabaseUnreachable(
                name,
                f"database {name!r} at {host}: no answer within {command_timeout:g}s "
                f"(client-side timeout from {settings.variable('statement_timeout')}); "
                "the connection was dropped",
                retry_after=settings.retry_after,
            )
        expired = _deadline_expired(context)
        if expired is not None and not context.is_pre_ping:
            context.is_disconnect = True
            raise DatabaseUnreachable(
                name,
                f"database {name!r} at {host}: no answer within {expired:g}s "
                f"(client-side deadline from {settings.variable('statement_timeout')}); "
                "the connection was dropped",
                retry_after=settings.retry_after,
            )
        if _is_statement_timeout(context.original_exception):
            limit = settings.statement_timeout
            raise StatementTimeout(
                name,
                f"database {name!r} at {host}: the server cancelled a statement"
                + (f" ({settings.variable('statement_timeout')}={limit:g}s)" if limit else "")
                + ": "
                + describe_error(context.original_exception, secrets),
                retry_after=settings.retry_after,
            )
        if not context.is_disconnect and _is_lost(context.original_exception):
            context.is_disconnect = True  # the driver has not noticed the close yet
        if (
            context.is_disconnect
            and not context.is_pre_ping
            # A cancellation (asyncio.timeout, a task cancelled) in the middle of a
            # statement also invalidates the connection; it must stay a cancellation.
            and isinstance(context.original_exception, Exception)
        ):
            raise DatabaseUnreachable(
                name,
                f"database {name!r} at {host}: the connection was lost: "
                + describe_error(context.original_exception, secrets),
                retry_after=settings.retry_after,
            )

    if adopted:
        return
    backend = settings.driver.backend
    if backend == "sqlite" and not settings.is_sqlite_memory:

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
            cursor = dbapi_connection.cursor()
            try:
                cursor.execute("PRAGMA journal_mode=WAL")
                cursor.execute(f"PRAGMA busy_timeout={int(SQLITE_BUSY_TIMEOUT * 1000)}")
            finally:
                cursor.close()

    if settings.read_only and backend == "sqlite":

        @event.listens_for(engine, "connect")
        def _sqlite_query_only(dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
            cursor = dbapi_connection.cursor()
            try:
                cursor.execute("PRAGMA query_only = ON")
            finally:
                cursor.close()

    if settings.read_only and backend in ("mysql", "mariadb"):

        @event.listens_for(engine, "connect")
        def _mysql_read_only(dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
            cursor = dbapi_connection.cursor()
            try:
                cursor.execute("SET SESSION TRANSACTION READ ONLY")
            finally:
                cursor.close()

    if backend in ("mysql", "mariadb") and settings.statement_timeout is not None:
        seconds = settings.statement_timeout

        @event.listens_for(engine, "connect")
        def _mysql_statement_timeout(dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
            cursor = dbapi_connection.cursor()
            try:
                cursor.execute("SELECT VERSION()")
                version = str(cursor.fetchone()[0])
                if "mariadb" in version.lower():
                    cursor.execute(f"SET SESSION max_statement_time = {seconds:.3f}")
                else:
                    cursor.execute(f"SET SESSION max_execution_time = {int(seconds * 1000)}")
            finally:
                cursor.close()

    logger.debug("engine for database %r: %s", name, redact_url(settings.url))


def _deadline_expired(context: ExceptionContext) -> float | None:
    """The deadline (seconds) that shut this error's psycopg connection down, if any."""
    connection = context.connection
    if connection is None or connection.closed or connection.invalidated:
        driver_connection = None
    else:
        driver_connection = connection.connection.driver_connection
    expired = getattr(driver_connection, DEADLINE_EXPIRED, None)
    return float(expired) if isinstance(expired, (int, float)) else None


def _is_lost(error: BaseException) -> bool:
    """True for an error that leaves the connection unusable although the driver may not
    know it yet: the server is shutting the session down (PostgreSQL SQLSTATE class 57P:
    ``admin_shutdown`` on a fast stop, ``crash_shutdown``, ``cannot_connect_now``; class
    08, connection exceptions), or asyncpg's protocol lost its state on such a close
    (``InternalClientError: cannot switch to state ...``)."""
    for candidate in (error, error.__cause__):
        if candidate is None:
            continue
        sqlstate = str(getattr(candidate, "sqlstate", None) or "")
        if sqlstate.startswith(("57P", "08")):
            return True
        if type(candidate).__name__ == "InternalClientError" and "cannot switch to state" in str(
            candidate
        ):
            return True
    return False


# MariaDB ER_STATEMENT_TIMEOUT, MySQL ER_QUERY_TIMEOUT.
_MYSQL_STATEMENT_TIMEOUTS = frozenset({1969, 3024})


def _is_statement_timeout(error: BaseException) -> bool:
    """True for a statement the server cancelled: PostgreSQL's SQLSTATE 57014
    (``statement_timeout``, or ``pg_cancel_backend``), MariaDB's and MySQL's timeouts."""
    if getattr(error, "sqlstate", None) == "57014":
        return True
    args: tuple[Any, ...] = error.args
    return bool(args) and args[0] in _MYSQL_STATEMENT_TIMEOUTS


def describe_error(exc: BaseException, secrets: Iterable[str] = ()) -> str:
    """One line naming the error type and its first message line, every secret masked.

    A character a driver could not encode is not named: it came from the connection's
    settings, most likely the password (``€`` where the driver sends latin-1).
    """
    if isinstance(exc, UnicodeError):
        encoding = getattr(exc, "encoding", "its encoding")
        return (
            f"{type(exc).__name__}: the driver cannot send a character of the connection "
            f"settings (password, user name, ...) in {encoding}"
        )
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    text = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return mask(text, secrets)
