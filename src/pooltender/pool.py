"""Admission control at the pool: bounded waiting, fail-fast errors that name the pool.

SQLAlchemy's ``QueuePool`` lets any number of callers wait ``pool_timeout`` seconds
for a connection. :class:`Admission` bounds that queue: when every connection is in
use and ``wait_limit`` callers already wait, the next checkout raises
:class:`PoolOverloaded` at once. A wait that runs out raises :class:`PoolTimeout`
with the pool's real numbers. The check lives in the pool's ``_do_get`` (the hook
SQLAlchemy provides to pool implementations), so it covers every checkout: ORM
sessions, ``engine.connect()`` and raw connections alike.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import exc as sa_exc
from sqlalchemy.pool import AsyncAdaptedQueuePool, ConnectionPoolEntry, QueuePool

from .errors import DatabaseUnavailable, PoolOverloaded, PoolTimeout

__all__ = ["Admission", "BurstLog", "GatedAsyncQueuePool", "GatedQueuePool", "would_wait"]

logger = logging.getLogger("pooltender.pool")


class BurstLog:
    """Logs the first failure of a burst, counts the rest, and sums the burst up.

    A burst ends after ``quiet`` seconds without failures; the summary line is written
    when the next burst starts or at :meth:`flush`. Thread-safe and cheap: no I/O
    but the log lines themselves.
    """

    def __init__(self, quiet: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._quiet = quiet
        self._clock = clock
        self._lock = threading.Lock()
        self._started: float | None = None
        self._last = 0.0
        self._count = 0
        self._database = ""
        self._reasons: dict[str, int] = {}

    def record(self, error: DatabaseUnavailable) -> None:
        now = self._clock()
        with self._lock:
            ended = self._started is not None and now - self._last > self._quiet
            summary = self._summary() if ended else None
            new = self._started is None or ended
            if new:
                self._started, self._count, self._reasons = now, 0, {}
            self._last = now
            self._count += 1
            self._database = error.database
            self._reasons[error.reason_code] = self._reasons.get(error.reason_code, 0) + 1
        if summary:
            logger.warning(summary)
        if new:
            logger.warning(
                "%s; answering 503 (further failures of this burst are counted, not logged)",
                error,
            )

    def flush(self) -> None:
        with self._lock:
            summary = self._summary() if self._started is not None else None
            self._started = None
        if summary:
            logger.warning(summary)

    def _summary(self) -> str | None:
        if self._count <= 1 or self._started is None:
            return None
        reasons = ", ".join(f"{n} {r}" for r, n in sorted(self._reasons.items()))
        return (
            f"database {self._database!r}: burst over, {self._count} requests refused "
            f"in {self._last - self._started:.1f}s ({reasons})"
        )


class Admission:
    """The wait bound of one database's pool, shared by its pools across ``dispose()``.

    ``waiting`` is the number of checkouts waiting now; ``rejected`` and ``timeouts``
    count refusals since start. ``on_wait`` (if set) receives each checkout's wait in
    seconds, for the monitor.
    """

    def __init__(
        self,
        database: str,
        *,
        wait_limit: int | None,
        retry_after: int = 1,
        on_wait: Callable[[float], None] | None = None,
        burst_log: BurstLog | None = None,
    ) -> None:
        self.database = database
        self.wait_limit = wait_limit
        self.retry_after = retry_after
        self.on_wait = on_wait
        self.burst_log = burst_log or BurstLog()
        self.waiting = 0
        self.rejected = 0
        self.timeouts = 0
        self._lock = threading.Lock()

    def _enter(self) -> bool:
        with self._lock:
            if self.wait_limit is not None and self.waiting >= self.wait_limit:
                self.rejected += 1
                return False
            self.waiting += 1
            return True

    def _leave(self) -> None:
        with self._lock:
            self.waiting -= 1

    def _refuse(self, error: DatabaseUnavailable) -> DatabaseUnavailable:
        self.burst_log.record(error)
        return error

    def overloaded(self, pool: QueuePool) -> PoolOverloaded:
        error = PoolOverloaded(
            self.database,
            f"database {self.database!r} is overloaded: all {_capacity(pool)} connections "
            f"are in use and {self.waiting} requests already wait (limit {self.wait_limit})",
            retry_after=self.retry_after,
        )
        self._refuse(error)
        return error

    def timed_out(self, pool: QueuePool, timeout: float) -> PoolTimeout:
        with self._lock:
            self.timeouts += 1
        error = PoolTimeout(
            self.database,
            f"database {self.database!r}: no connection free within {timeout:.2f}s "
            f"(pool size {pool.size()}, overflow {pool.overflow()}, "
            f"{pool.checkedout()} checked out, {self.waiting} waiting)",
            retry_after=self.retry_after,
        )
        self._refuse(error)
        return error

    def saturated(self, pool: QueuePool) -> bool:
        """True when a checkout now would be refused: no connection free, none may be
        opened, and the wait queue is full."""
        limit = self.wait_limit
        return limit is not None and self.waiting >= limit and would_wait(pool)

    def admit(self, pool: QueuePool) -> None:
        """Raise :class:`PoolOverloaded` now if a checkout would be refused now.

        For work that checks out later (a session connects at its first statement):
        refusing before it starts costs the caller nothing and leaves nothing half done.
        """
        if self.saturated(pool):
            with self._lock:
                self.rejected += 1
            raise self.overloaded(pool)

    def checkout(self, pool: QueuePool, get: Callable[[], ConnectionPoolEntry]) -> Any:
        start = time.perf_counter()
        if would_wait(pool):
            if not self._enter():
                raise self.overloaded(pool)
            try:
                record = get()
            except sa_exc.TimeoutError:
                raise self.timed_out(pool, pool.timeout()) from None
            finally:
                self._leave()
        else:
            record = get()
        if self.on_wait is not None:
            self.on_wait(time.perf_counter() - start)
        return record


def would_wait(pool: QueuePool) -> bool:
    """True when a checkout from ``pool`` now finds no idle connection and no room to open one."""
    return isinstance(pool, _GatedPool) and pool.would_wait()


def _capacity(pool: QueuePool) -> int | None:
    return pool.capacity if isinstance(pool, _GatedPool) else None


class _GatedPool(QueuePool):
    """A QueuePool whose checkouts pass through an :class:`Admission`.

    It overrides ``_do_get`` and ``_do_return_conn``, the hooks SQLAlchemy's ``Pool``
    provides to its implementations (see :mod:`pooltender.compat`), and reads the pool
    only through its public counters (``size()``, ``checkedin()``, ``checkedout()``,
    ``overflow()``).

    **Overflow that lingers** (``overflow_idle_timeout``, ``DATABASE_OVERFLOW_IDLE_TIMEOUT``,
    default 30 s): SQLAlchemy closes an overflow connection the moment it comes back
    to a full pool, so a load that hovers just above ``pool_size`` opens and closes a
    connection on almost every request (each open costs milliseconds: TCP, TLS,
    authentication, a new backend process). Here a returned overflow connection is kept
    as a *spare*, handed out (newest first) before any new connection is opened, and
    closed once it has sat unused longer than the timeout, as HikariCP's ``idleTimeout``
    and psycopg_pool's ``max_idle`` shrink a pool above its minimum. Spares count as
    idle (``checkedin()``) and as overflow; never more than ``pool_size +
    max_overflow`` connections exist. 0 restores SQLAlchemy's behaviour.
    """

    def __init__(
        self,
        creator: Any,
        pool_size: int = 5,
        max_overflow: int = 10,
        # Not keyword-only: create_engine() finds a pool's options in its signature's
        # positional-or-keyword parameters.
        admission: Admission | None = None,
        overflow_idle_timeout: float = 0.0,
        **kw: Any,
    ) -> None:
        super().__init__(creator, pool_size=pool_size, max_overflow=max_overflow, **kw)
        self.admission = admission
        self.overflow_idle_timeout = overflow_idle_timeout
        self.capacity: int | None = (
            None if pool_size == 0 or max_overflow < 0 else pool_size + max_overflow
        )
        """The most connections this pool may hold at once; ``None``: unbounded."""
        # Returned overflow connections kept open, oldest first: (returned at, record).
        self._spares: collections.deque[tuple[float, ConnectionPoolEntry]] = collections.deque()
        self._spares_lock = threading.Lock()

    def would_wait(self) -> bool:
        """True when a checkout now finds no idle connection and no room to open one."""
        capacity = self.capacity
        return capacity is not None and self.checkedin() == 0 and self.checkedout() >= capacity

    def _do_get(self) -> ConnectionPoolEntry:
        admission = self.admission
        if admission is None:
            return self._get()
        record: ConnectionPoolEntry = admission.checkout(self, self._get)
        return record

    def _get(self) -> ConnectionPoolEntry:
        if self._spares and super().checkedin() == 0:
            with self._spares_lock:
                spare = self._spares.pop()[1] if self._spares else None
            if spare is not None:
                return spare
        return super()._do_get()

    def _do_return_conn(self, record: ConnectionPoolEntry) -> None:
        now = time.monotonic()
        if self.overflow_idle_timeout > 0 and super().checkedin() >= self.size():
            with self._spares_lock:
                self._spares.append((now, record))
        else:
            super()._do_return_conn(record)
        if self._spares:
            self._close_idle_spares(now)

    def _close_idle_spares(self, now: float) -> None:
        expired: list[ConnectionPoolEntry] = []
        with self._spares_lock:
            while self._spares and now - self._spares[0][0] > self.overflow_idle_timeout:
                expired.append(self._spares.popleft()[1])
        for record in expired:
            # QueuePool's own return: into the queue if it has room now, else closed
            # and the overflow count lowered.
            super()._do_return_conn(record)

    def checkedin(self) -> int:
        return super().checkedin() + len(self._spares)

    def checkedout(self) -> int:
        return super().checkedout() - len(self._spares)

    def dispose(self) -> None:
        with self._spares_lock:
            spares = [record for _, record in self._spares]
            self._spares.clear()
        for record in spares:
            record.close()
        super().dispose()  # also resets the overflow count

    def recreate(self) -> QueuePool:
        new = super().recreate()
        assert isinstance(new, _GatedPool)
        new.admission = self.admission
        new.overflow_idle_timeout = self.overflow_idle_timeout
        return new


class GatedQueuePool(_GatedPool):
    """:class:`QueuePool` with admission control (sync engines)."""

    # Log where users already configure SQLAlchemy's pool logging (pooltender.compat, 2).
    _sqla_logger_namespace = "sqlalchemy.pool.impl.QueuePool"


class GatedAsyncQueuePool(_GatedPool, AsyncAdaptedQueuePool):
    """:class:`AsyncAdaptedQueuePool` with admission control (async engines)."""

    _sqla_logger_namespace = "sqlalchemy.pool.impl.AsyncAdaptedQueuePool"  # compat, 2
