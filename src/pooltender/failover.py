"""Leave a demoted primary: a failover detected by the pool itself.

After a failover (Patroni, RDS Multi-AZ, a promoted replica) the old primary often comes
back, or stays up, read-only. Its pooled connections still answer the pre-ping's
``SELECT 1``; every write fails (PostgreSQL SQLSTATE ``25006``, "cannot execute INSERT in
a read-only transaction") until the service restarts. On a database *not* declared
read-only (``DATABASE_<NAME>_READ_ONLY``), with ``DATABASE_FAILOVER_DETECTION`` on (the
default), pooltender treats as a failover:

- a write refused as read-only: PostgreSQL ``25006`` (unless the server reports itself
  writable, :func:`reports_read_only`: then the application's own transaction was read
  only), MariaDB/MySQL error ``1290`` (``--read-only``);
- a new connection whose server reports itself in recovery (a standby) or read-only
  (``transaction_read_only``; MariaDB/MySQL ``@@read_only``): refused at connect time.

Then the connection is replaced and so is every pooled connection of the same *server
generation*: each connection carries the generation it was opened in
(``ConnectionPoolEntry.info``), a failover starts the next one, and a checkout of an
older one replaces it (a ``checkout`` event raising ``DisconnectionError``, SQLAlchemy's
documented way). The request answers ``503`` with reason ``failover``
(:class:`~pooltender.errors.FailoverDetected`), never ``500``; the next requests get
connections to whatever the URL now points at (with a multi-host URL, the writable host).
Each failover is counted once (``failovers`` in the snapshot, ``pooltender_failovers_total``)
and logged twice, once when it is detected (the server left) and once when a writable
server is reached (old and new server identity: address, port, system identifier and
timeline; the URL redacted).

Everything goes through SQLAlchemy's public events: ``connect``, ``checkout`` and
``handle_error`` (``ExceptionContext.is_disconnect`` invalidates the failing connection).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any

from sqlalchemy import event, exc
from sqlalchemy.engine import Engine
from sqlalchemy.engine.interfaces import ExceptionContext
from sqlalchemy.pool import ConnectionPoolEntry

from .errors import FailoverDetected
from .secrets import redact_url
from .settings import DatabaseSettings

__all__ = [
    "GENERATION",
    "FailoverDetector",
    "ServerState",
    "is_read_only_error",
    "reports_read_only",
]

logger = logging.getLogger("pooltender.failover")

GENERATION = "pooltender_generation"
"""``ConnectionPoolEntry.info`` key: the server generation the connection was opened in."""
IDENTITY = "pooltender_server"
"""``ConnectionPoolEntry.info`` key: the identity of the connection's server (for logs)."""

BACKENDS = ("postgresql", "mysql", "mariadb")

# MariaDB/MySQL ER_OPTION_PREVENTS_STATEMENT ("running with the --read-only option").
_MYSQL_READ_ONLY = 1290

_POSTGRESQL_STATE = """
SELECT pg_is_in_recovery(),
       current_setting('transaction_read_only') = 'on',
       coalesce(host(inet_server_addr()), 'local') || ':' || coalesce(inet_server_port(), 0),
       CASE WHEN has_function_privilege('pg_control_system()', 'EXECUTE')
            THEN (SELECT system_identifier::text FROM pg_control_system()) END,
       CASE WHEN NOT pg_is_in_recovery()
            THEN ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int END
"""
_MYSQL_STATE = "SELECT @@global.read_only, @@hostname, @@port, @@server_id"


@dataclass(frozen=True, slots=True)
class ServerState:
    """What a new connection's server says about itself."""

    identity: str
    """Address and port, system identifier and timeline (PostgreSQL) or server id."""
    refusal: str | None = None
    """Why this server cannot be the primary (in recovery, read-only); ``None``: writable."""


def is_read_only_error(error: BaseException) -> str | None:
    """The code of a write refused because the server is read-only (``"SQLSTATE 25006"``,
    ``"error 1290"``), else ``None``."""
    for candidate in (error, error.__cause__):
        if candidate is None:
            continue
        sqlstate = getattr(candidate, "sqlstate", None) or getattr(candidate, "pgcode", None)
        if sqlstate == "25006":
            return "SQLSTATE 25006"
        args: tuple[Any, ...] = getattr(candidate, "args", ())
        if len(args) >= 2 and args[0] == _MYSQL_READ_ONLY and "read" in str(args[1]).lower():
            return f"error {_MYSQL_READ_ONLY}"
    return None


_REPORTED = ("in_hot_standby", "default_transaction_read_only")


def reports_read_only(driver_connection: Any) -> bool | None:
    """Whether the server of a PostgreSQL connection last reported itself read-only:
    ``in_hot_standby`` or ``default_transaction_read_only`` on (PostgreSQL 14+ sends both
    as ``ParameterStatus`` whenever they change, a reload included); ``None`` when the
    driver or the server does not tell. It tells a demoted primary from a transaction
    the application itself made read-only (``SET TRANSACTION READ ONLY``)."""
    status = getattr(getattr(driver_connection, "info", None), "parameter_status", None)
    if callable(status):  # psycopg
        values = [status(name) for name in _REPORTED]
    elif callable(getattr(driver_connection, "get_settings", None)):  # asyncpg
        reported = driver_connection.get_settings()
        values = [getattr(reported, name, None) for name in _REPORTED]
    elif callable(getattr(driver_connection, "get_parameter_status", None)):  # psycopg2
        values = [driver_connection.get_parameter_status(name) for name in _REPORTED]
    else:
        return None
    if all(value is None for value in values):
        return None
    return any(value == "on" for value in values)


def server_state(dbapi_connection: Any, backend: str) -> ServerState | None:
    """Ask a new connection's server what it is; ``None`` if it cannot tell (then the
    connection is taken as writable). The transaction the query opened is rolled back."""
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(_POSTGRESQL_STATE if backend == "postgresql" else _MYSQL_STATE)
        row = cursor.fetchone()
    except Exception as error:  # a PostgreSQL look-alike without these functions
        logger.debug("cannot ask the server whether it is read-only: %r", error)
        row = None
    finally:
        cursor.close()
        dbapi_connection.rollback()
    if row is None:
        return None
    if backend == "postgresql":
        recovery, read_only, address, system, timeline = row
        identity = address + (f" system {system}" if system else "")
        identity += f" timeline {timeline}" if timeline is not None else ""
        if recovery:
            return ServerState(identity + " (standby)", "the server is in recovery (a standby)")
        if read_only:
            return ServerState(identity + " (read-only)", "the server's transactions are read-only")
        return ServerState(identity)
    read_only, hostname, port, server_id = row
    identity = f"{hostname}:{port} server_id {server_id}"
    if int(read_only or 0):
        return ServerState(identity + " (read-only)", "the server runs with read_only on")
    return ServerState(identity)


class FailoverDetector:
    """One database's failover state: the server generation and the failovers counted.

    :meth:`install` puts its listeners on an engine. ``enabled`` is false for a
    database declared read-only, with ``DATABASE_FAILOVER_DETECTION=false``, or on a
    backend without read-only servers (SQLite); then nothing is installed.
    """

    def __init__(self, settings: DatabaseSettings) -> None:
        self.database = settings.name
        self.enabled = (
            settings.failover_detection
            and not settings.read_only
            and settings.driver.backend in BACKENDS
        )
        self.generation = 0
        self.failovers = 0
        """Failovers detected since start (each counted once, however many connections
        hit it)."""
        self._backend = settings.driver.backend
        self._url = redact_url(settings.url)
        self._retry_after = settings.retry_after
        self._accepted = False  # a connection of the current generation was accepted
        self._left: str | None = None  # the server a failover left, until the next is found
        self._lock = threading.Lock()

    def install(self, engine: Engine) -> None:
        """Listen to ``engine``'s new connections, checkouts and errors (when enabled)."""
        if not self.enabled:
            return
        event.listen(engine, "connect", self._on_connect)
        event.listen(engine, "checkout", self._on_checkout, insert=True)
        event.listen(engine, "handle_error", self._on_error)

    def remove(self, engine: Engine) -> None:
        """Take :meth:`install`'s listeners off ``engine`` again (an adopted engine given
        back to its app)."""
        for name, listener in self._listeners():
            if event.contains(engine, name, listener):
                event.remove(engine, name, listener)

    def _listeners(self) -> tuple[tuple[str, Any], ...]:
        return (
            ("connect", self._on_connect),
            ("checkout", self._on_checkout),
            ("handle_error", self._on_error),
        )

    # -- events ----------------------------------------------------------------------

    def _on_connect(self, dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
        state = server_state(dbapi_connection, self._backend)
        identity = state.identity if state is not None else "unknown server"
        if state is not None and state.refusal is not None:
            self._failed_over(None, identity, state.refusal)
            dbapi_connection.close()  # refused: SQLAlchemy would keep it open
            raise FailoverDetected(
                self.database,
                f"database {self.database!r}: {state.refusal}, not a primary: the connection "
                "was refused (a failover in progress, or the URL names a standby)",
                retry_after=self._retry_after,
            )
        with self._lock:
            record.info[GENERATION] = self.generation
            record.info[IDENTITY] = identity
            self._accepted = True
            left, self._left = self._left, None
        if left is not None:
            logger.warning(
                "database %r: failover complete: left %s, now on %s (%s)",
                self.database,
                left,
                identity,
                self._url,
            )

    def _on_checkout(self, dbapi_connection: Any, record: ConnectionPoolEntry, proxy: Any) -> None:
        generation = record.info.get(GENERATION)
        if generation is not None and generation < self.generation:
            raise exc.DisconnectionError("a connection to the server a failover left")

    def _on_error(self, context: ExceptionContext) -> None:
        code = is_read_only_error(context.original_exception)
        connection = context.connection
        if code is None or connection is None or context.is_pre_ping:
            return
        # ``Connection.connection`` of an invalidated connection would reconnect.
        usable = not (connection.closed or connection.invalidated)
        proxied = connection.connection if usable else None
        if proxied is not None and reports_read_only(proxied.driver_connection) is False:
            return  # the server is writable: a transaction the application made read-only
        info = proxied.info if proxied is not None else {}
        self._failed_over(info.get(GENERATION), info.get(IDENTITY, "unknown server"), code)
        context.is_disconnect = True  # this connection goes; the others by their generation
        context.invalidate_pool_on_disconnect = False
        raise FailoverDetected(
            self.database,
            f"database {self.database!r}: the server refused a write as read-only ({code}): "
            "a failover; the connection is replaced, retry",
            retry_after=self._retry_after,
        )

    def _failed_over(self, generation: int | None, identity: str, why: str) -> None:
        """A read-only signal from a connection of ``generation`` (``None``: a new one):
        a failover, unless one was already counted for that generation."""
        with self._lock:
            if generation is None and not self._accepted:
                return  # nothing of this generation in the pool: already counted
            if generation is not None and generation < self.generation:
                return  # an older connection: its failover is counted
            self.generation += 1
            self.failovers += 1
            self._accepted = False
            self._left = identity
            count = self.failovers
        logger.warning(
            "database %r: failover detected (%s) on %s; replacing every connection to it "
            "(failover %d since start; %s)",
            self.database,
            why,
            identity,
            count,
            self._url,
        )
