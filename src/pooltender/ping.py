"""The pre-ping: a pooled connection is checked before it is lent out.

A connection that sat in the pool may have died meanwhile (a database restart, a
terminated backend, a firewall reaping idle connections). ``DATABASE_POOL_PRE_PING``
(on by default) checks each pooled connection at checkout and replaces a dead one, so
the request gets a working connection instead of an error.

It is a ``checkout`` pool event, the interface SQLAlchemy documents for this ("raise
``DisconnectionError`` and the pool replaces the connection"), not SQLAlchemy's own
``pool_pre_ping``, for these reasons:

- no round trip of its own where a transaction follows: a checkout made by one of
  pooltender's transactions (``Session``, ``Connection``: :func:`transaction_follows`)
  on asyncpg sends the transaction's own ``BEGIN`` at checkout, and that is the check.
  Nothing has happened in the transaction yet, so when ``BEGIN`` fails the connection
  is replaced and the request goes on, on a new one: the request makes the round trips
  of a plain session (``BEGIN``, its statements, ``COMMIT``), and a dead connection still
  costs it nothing. Where a per-connection ``readonly``/``deferrable`` option comes
  after the checkout, the early ``BEGIN`` is rolled back first (one round trip, as
  asyncpg's adapter does for an isolation level), so the option still holds;
- elsewhere (``ReadConnection``, the app's own checkouts, other drivers), with asyncpg:
  ``SELECT 1`` over the simple protocol, not SQLAlchemy's ``BEGIN``, ``;``,
  ``ROLLBACK`` (three round trips): one message, one implicit transaction, no prepared
  statement, safe behind PgBouncer, run through the adapter's public ``run_async``;
- a check that gets no answer within the command timeout (a silent network) counts as
  a lost connection, not as an error the request sees, and the connection is aborted
  at once (a graceful close would wait on the silent peer again);
- the *window* (``DATABASE_PRE_PING_WINDOW``): a connection returned less than that
  many seconds ago skips the check if it :func:`looks_alive`, as HikariCP's
  ``aliveBypassWindowMs``.

A new connection is not pinged (it has just answered the handshake). Any failure of
the ping replaces the connection, as psycopg_pool and HikariCP do: SQLAlchemy
invalidates it and opens a new one (twice at most); if that fails too, the checkout
fails with :class:`~pooltender.errors.DatabaseUnreachable`.
"""

from __future__ import annotations

import contextvars
import logging
import select
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event, exc
from sqlalchemy.engine import Engine
from sqlalchemy.pool import ConnectionPoolEntry

from . import compat

__all__ = ["RETURNED", "install_pre_ping", "looks_alive", "transaction_follows"]

logger = logging.getLogger("pooltender.pool")

RETURNED = "pooltender_returned"
"""``ConnectionPoolEntry.info`` key: ``time.monotonic()`` of the connection's last return.

SQLAlchemy clears ``info`` when it replaces a connection, so a connection without it
is new.
"""


_transaction_follows: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "pooltender_transaction_follows", default=False
)


@contextmanager
def transaction_follows(follows: bool = True) -> Iterator[None]:
    """Checkouts in this block open a transaction at once (``follows``) or do not.

    Set by :class:`pooltender.sessions.AsyncSessions` around its sessions and
    connections; the pre-ping then makes the transaction's ``BEGIN`` its check.
    """
    previous = _transaction_follows.get()
    _transaction_follows.set(follows)
    try:
        yield
    finally:
        # set(), not reset(token): the block may end in another context (a dependency
        # closed by the framework), where a token would be refused.
        _transaction_follows.set(previous)


def install_pre_ping(engine: Engine, *, window: float = 0.0, begin: bool = True) -> None:
    """Check every pooled connection of ``engine`` at checkout (see the module docstring).

    ``begin``: let a checkout that opens a transaction send its ``BEGIN`` as the check
    (asyncpg only; off for a read-only database, whose engine-wide ``readonly`` option
    SQLAlchemy sets after the checkout).
    """
    dialect = engine.dialect
    asyncpg = dialect.driver == "asyncpg"
    begin = begin and asyncpg

    def ping(dbapi_connection: Any) -> None:
        if begin and _transaction_follows.get() and not dbapi_connection.autocommit:
            compat.asyncpg_begin(dbapi_connection)
        elif asyncpg:
            dbapi_connection.run_async(_select_1)
        elif not dialect.do_ping(dbapi_connection):
            raise exc.DisconnectionError("the pre-ping reported the connection unusable")

    if begin:
        _roll_back_before_characteristics(dialect)

    @event.listens_for(engine, "checkin")
    def _returned(dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
        if dbapi_connection is not None:
            record.info[RETURNED] = time.monotonic()

    if asyncpg and window > 0:

        @event.listens_for(engine, "connect")
        def _verify(dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
            compat.verify_asyncpg_connection(dbapi_connection.driver_connection)

    # First among the checkout listeners: the monitor counts the connection actually lent.
    @event.listens_for(engine, "checkout", insert=True)
    def _pre_ping(dbapi_connection: Any, record: ConnectionPoolEntry, proxy: Any) -> None:
        returned = record.info.get(RETURNED)
        if returned is None:
            return  # new: it has just answered the handshake
        if window > 0 and time.monotonic() - returned <= window and looks_alive(dbapi_connection):
            return
        try:
            ping(dbapi_connection)
        except Exception as error:
            if asyncpg and (
                isinstance(error, TimeoutError) or isinstance(error.__cause__, TimeoutError)
            ):
                # No answer within the command timeout: the peer may be gone silently.
                # Abort at once; SQLAlchemy's graceful close would wait on it again.
                dbapi_connection.driver_connection.terminate()
            logger.info(
                "pool connection failed its pre-ping (%s); replacing it", type(error).__name__
            )
            raise exc.DisconnectionError(
                f"pre-ping failed: {type(error).__name__}: {error}"
            ) from error


def _roll_back_before_characteristics(dialect: Any) -> None:
    """Make a connection's ``readonly``/``deferrable`` option apply to its transaction.

    SQLAlchemy sets them on a connection after its checkout, where the early ``BEGIN``
    has already run; asyncpg's adapter reads them at ``BEGIN``. So the dialect's setters
    first roll the connection's transaction back (nothing has run in it: SQLAlchemy
    refuses these options inside a transaction of its own) and the next statement
    begins a new one with the option. Without an open transaction ``rollback()`` sends
    nothing.
    """
    for name in ("set_readonly", "set_deferrable"):
        original = getattr(dialect, name)

        def setter(dbapi_connection: Any, value: Any, _original: Any = original) -> None:
            dbapi_connection.rollback()
            _original(dbapi_connection, value)

        setattr(dialect, name, setter)


async def _select_1(driver_connection: Any) -> None:
    # ``execute`` without arguments: the simple protocol, no prepared statement. Not the
    # empty query: asyncpg fails on the server's EmptyQueryResponse.
    await driver_connection.execute("SELECT 1")


def looks_alive(dbapi_connection: Any) -> bool:
    """Whether a pooled connection looks usable without a round trip.

    False when the driver knows it closed, or when its socket has something to read:
    an idle connection's server says nothing unless it is going away (a terminated
    backend sends its FATAL error, then closes), so input waiting on an idle socket is
    a reason to ping. ``select`` with a zero timeout costs one system call. SQLite (no
    server) looks alive; a driver whose socket is not known here (MySQL's) does not, so
    the window never skips its ping.
    """
    driver = getattr(dbapi_connection, "driver_connection", dbapi_connection)
    fileno: int | None = None
    is_closed = getattr(driver, "is_closed", None)
    if callable(is_closed):  # asyncpg
        if is_closed():
            return False
        sock = compat.asyncpg_socket(driver)
        fileno = sock.fileno() if sock is not None else None
    elif callable(getattr(driver, "fileno", None)):  # psycopg, psycopg2
        if getattr(driver, "closed", False) or getattr(driver, "broken", False):
            return False
        try:
            fileno = driver.fileno()
        except Exception:  # psycopg raises OperationalError once the connection is closed
            return False
    else:  # SQLite has no server to lose; other drivers' sockets are not known here
        return type(driver).__module__.startswith(("sqlite3", "aiosqlite"))
    if fileno is None or fileno < 0:
        return False
    try:
        readable, _, _ = select.select([fileno], [], [], 0)
    except (OSError, ValueError):
        return False
    return not readable
