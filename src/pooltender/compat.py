"""The one place where pooltender touches names that are not public API.

Everything else in the package uses SQLAlchemy's, the drivers' and Python's public
interfaces: engine and pool events, ``Dialect.do_ping``, ``AdaptedConnection.run_async``,
``asyncio.current_task(loop)``, the pool's public counters. What remains is listed here,
each with why no public interface does the job and the versions it was checked on.
:func:`verify` runs before pooltender builds its first engine and raises
:class:`~pooltender.errors.CompatibilityError` naming what is missing and the installed
version, so an upgrade that moves a name fails at start, loudly, never silently in a
request; ``tests/unit/test_compat.py`` asserts that each name exists *and behaves*.

Checked on SQLAlchemy 2.0.46, 2.0.58 and 2.1.9, asyncpg 0.32, psycopg 3.3,
CPython 3.11 (the legs of `make test`; the unit tests re-check them on every run).

1. ``QueuePool._do_get`` / ``QueuePool._do_return_conn``: the hooks SQLAlchemy's
   ``Pool`` documents for its implementations ("supplied by subclasses"). pooltender's
   pool overrides them to bound the wait queue and to keep overflow connections as
   spares; there is no event that runs *before* a checkout waits.
2. ``Pool._sqla_logger_namespace``: the class attribute SQLAlchemy's logging reads to
   name a pool's logger. Set on pooltender's pool classes so their log lines appear
   under ``sqlalchemy.pool.impl.QueuePool``, where users already configure pool logging.
   Without it they would log under ``pooltender.pool`` (harmless, hence no error).
3. asyncpg ``Connection._transport``: the only way to reach an asyncpg connection's
   socket. The pre-ping window (:func:`pooltender.ping.looks_alive`) asks the kernel,
   with one ``select()``, whether the server has written to an idle connection (a
   terminated backend sends its FATAL error). asyncpg has no public accessor.
4. ``sys._getframe`` / ``sys._current_frames``: CPython's documented frame access (the
   ``sys`` docs mark them implementation details). The monitor walks the stack to the
   user's checkout site; the watchdog reads the event-loop thread's frame. ``inspect``
   builds ``FrameInfo`` objects and reads source for every frame: too slow for a
   checkout.
5. ``sqlalchemy.util.await_only`` (2.0; ``await_`` in 2.1, where ``await_only`` stays as
   an alias): awaits from the synchronous pool code SQLAlchemy runs inside its asyncio
   greenlet. pooltender's async pool waits for a connection handed to it in turn (first
   come, first served) on an asyncio future; the pool API is synchronous, and
   ``AdaptedConnection.run_async`` needs a connection, which a waiting checkout has not.
6. ``QueuePool._creator``, ``_max_overflow``, ``_pre_ping``, ``_recycle``,
   ``_pool.use_lifo``, ``_orig_logging_name``, ``_reset_on_return``, ``_dialect`` and
   ``Pool(_dispatch=...)``: what ``QueuePool.recreate()`` (public) passes to build a
   pool like another. Adopting an app's own engine (:mod:`pooltender.adopt`) builds
   pooltender's gated pool *with the app's pool options and listeners*;
   ``recreate()`` can only build the same class again, and no public accessor gives
   the options back (``status()`` is text without them).
7. ``asyncio.events.Handle._run``: the method the standard event loop calls to run
   each callback (one task step, one ``call_soon``), a new frame of it for each. The
   watchdog tells a loop stuck in one callback (the same ``_run`` frame across its
   threshold) from one busy with many short ones; no public interface names the
   running callback (``loop._current_handle`` is kept in debug mode only). Loops that
   run callbacks without a Python frame (uvloop) need nothing from here.
8. SQLAlchemy's asyncpg adapter ``_start_transaction()``: the coroutine that sends the
   adapter's own ``BEGIN`` (with the isolation level, ``readonly`` and ``deferrable`` it
   holds) and records that the transaction has started, so the first statement does
   not send another. The pre-ping of a checkout that opens a transaction
   (:mod:`pooltender.ping`) sends that ``BEGIN`` as the liveness check: the request's
   round trip does the ping's work. The adapter's public ``ping()`` sends three round
   trips, ``run_async`` reaches only the driver connection, and a ``BEGIN`` sent there
   would leave the adapter unaware of its transaction.
9. ``QueuePool._pool.get(block=False)`` and ``sqlalchemy.util.queue.Empty``: take an
   idle connection from a pool's own queue at once, or learn there is none. pooltender's
   pool decides "take an idle one or wait in line" in one step under its lock; the public
   path (``QueuePool._do_get``) waits in SQLAlchemy's queue instead when the pool is at
   capacity, and on SQLAlchemy 2.0 the async queue hands even an available connection
   over some event-loop turns later (2.1 takes it at once), a window in which the same
   connection looks idle to every other checkout.
"""

from __future__ import annotations

import asyncio
import socket
import sys
from collections.abc import Callable
from importlib import metadata
from types import FrameType
from typing import Any

from sqlalchemy import util as sa_util
from sqlalchemy.pool import ConnectionPoolEntry, QueuePool
from sqlalchemy.util import queue as sa_queue

from .errors import CompatibilityError

__all__ = [
    "HANDLE_RUN_CODE",
    "LOGGER_NAMESPACE",
    "POOL_HOOKS",
    "QUEUE_POOL_OPTIONS",
    "asyncpg_begin",
    "asyncpg_socket",
    "await_",
    "current_frames",
    "getframe",
    "queue_pool_options",
    "take_idle",
    "verify",
    "verify_asyncpg_connection",
]

POOL_HOOKS = ("_do_get", "_do_return_conn")
"""(1) The ``QueuePool`` methods pooltender's pool overrides."""

LOGGER_NAMESPACE = "_sqla_logger_namespace"
"""(2) The class attribute naming a pool class's logger."""

ASYNCPG_TRANSPORT = "_transport"
"""(3) The attribute of an asyncpg ``Connection`` holding its asyncio transport."""

QUEUE_POOL_OPTIONS = (
    "_creator",
    "_max_overflow",
    "_pre_ping",
    "_recycle",
    "_orig_logging_name",
    "_reset_on_return",
    "_dialect",
)
"""(6) The attributes of a ``QueuePool`` that ``recreate()`` reads (and ``_pool``)."""
ASYNCPG_BEGIN = "_start_transaction"
"""(8) The asyncpg adapter's coroutine method that sends its ``BEGIN``."""

getframe: Callable[[int], FrameType] = sys._getframe
"""(4) ``sys._getframe``."""

current_frames: Callable[[], dict[int, FrameType]] = sys._current_frames
"""(4) ``sys._current_frames``."""

await_: Callable[[Any], Any] | None = getattr(sa_util, "await_", None) or getattr(
    sa_util, "await_only", None
)
"""(5) SQLAlchemy's await from synchronous code inside its greenlet (``None`` if gone)."""
HANDLE_RUN_CODE: Any = getattr(getattr(asyncio.events.Handle, "_run", None), "__code__", None)
"""(7) The code object of ``asyncio.events.Handle._run`` (``None``: not a Python function)."""


_verified = False


def version(distribution: str) -> str:
    """The installed version of ``distribution``, or ``"not installed"``."""
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "not installed"


def verify() -> None:
    """Raise :class:`CompatibilityError` if a name pooltender relies on is gone.

    Cheap and idempotent: the checks run once per process.
    """
    global _verified
    if _verified:
        return
    for hook in POOL_HOOKS:
        if not callable(getattr(QueuePool, hook, None)):
            raise CompatibilityError(f"sqlalchemy.pool.QueuePool.{hook}", "SQLAlchemy")
    if not issubclass(getattr(sa_queue, "Empty", type(None)), Exception):
        raise CompatibilityError("sqlalchemy.util.queue.Empty", "SQLAlchemy")
    if not callable(await_):
        raise CompatibilityError("sqlalchemy.util.await_only", "SQLAlchemy")
    try:
        from sqlalchemy.dialects.postgresql.asyncpg import AsyncAdapt_asyncpg_connection
    except ImportError:  # pragma: no cover - the dialect ships with SQLAlchemy
        pass
    else:
        if not callable(getattr(AsyncAdapt_asyncpg_connection, ASYNCPG_BEGIN, None)):
            raise CompatibilityError(f"AsyncAdapt_asyncpg_connection.{ASYNCPG_BEGIN}", "SQLAlchemy")
    for name in ("_getframe", "_current_frames"):
        if not callable(getattr(sys, name, None)):
            raise CompatibilityError(f"sys.{name}", "Python")
    _verified = True


def queue_pool_options(pool: QueuePool) -> dict[str, Any]:
    """(6) The arguments ``pool.recreate()`` would build its successor with, for another
    pool class (keeps the app's creator, sizes, recycle, pre-ping and listeners)."""
    for name in (*QUEUE_POOL_OPTIONS, "_pool"):
        if not hasattr(pool, name):
            raise CompatibilityError(f"sqlalchemy.pool.QueuePool.{name}", "SQLAlchemy")
    return {
        "creator": pool._creator,
        "pool_size": pool.size(),
        "max_overflow": pool._max_overflow,
        "pre_ping": pool._pre_ping,
        "use_lifo": pool._pool.use_lifo,
        "timeout": pool.timeout(),
        "recycle": pool._recycle,
        "echo": pool.echo,
        "logging_name": pool._orig_logging_name,
        "reset_on_return": pool._reset_on_return,
        "_dispatch": pool.dispatch,
        "dialect": pool._dialect,
    }


def take_idle(pool: QueuePool) -> ConnectionPoolEntry | None:
    """(9) An idle connection of ``pool``'s own queue, taken without waiting, or ``None``."""
    try:
        record: ConnectionPoolEntry = pool._pool.get(False)
    except sa_queue.Empty:
        return None
    return record


def verify_asyncpg_connection(driver_connection: Any) -> None:
    """Raise :class:`CompatibilityError` if an asyncpg connection has no transport.

    Called on each new asyncpg connection of an engine with a pre-ping window (an
    instance attribute cannot be checked on the class).
    """
    if not hasattr(driver_connection, ASYNCPG_TRANSPORT):
        raise CompatibilityError(f"asyncpg.Connection.{ASYNCPG_TRANSPORT}", "asyncpg")


def asyncpg_socket(driver_connection: Any) -> socket.socket | None:
    """The socket of an asyncpg connection (``None`` once its transport is gone)."""
    transport = getattr(driver_connection, ASYNCPG_TRANSPORT)
    if transport is None:
        return None
    sock: socket.socket | None = transport.get_extra_info("socket")
    return sock


def asyncpg_begin(dbapi_connection: Any) -> None:
    """(8) Send the asyncpg adapter's ``BEGIN`` now, as its first statement would.

    A failure raises as the adapter's statements do (a ``DBAPIError`` of the dialect,
    the driver's ``TimeoutError`` chained); the adapter then has no transaction.
    """
    begin = getattr(dbapi_connection, ASYNCPG_BEGIN)
    dbapi_connection.run_async(lambda _driver_connection: begin())
