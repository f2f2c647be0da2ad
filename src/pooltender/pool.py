"""The pool: bounded waiting, fail-fast errors that name the pool, lingering overflow.

SQLAlchemy's ``QueuePool`` lets any number of callers wait ``pool_timeout`` seconds
for a connection. pooltender's pool bounds that queue (:class:`WaitQueue`): when every
connection is in use and ``DATABASE_MAX_WAITING`` callers already wait, the next
checkout raises :class:`PoolOverloaded` at once. A wait that runs out raises
:class:`PoolTimeout` with the pool's real numbers. The check lives in the pool's
``_do_get`` (the hook SQLAlchemy provides to pool implementations), so it covers every
checkout: ORM sessions, ``engine.connect()`` and raw connections alike.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import exc as sa_exc
from sqlalchemy.pool import AsyncAdaptedQueuePool, ConnectionPoolEntry, QueuePool

from . import compat
from .errors import DatabaseUnavailable, PoolOverloaded, PoolTimeout

__all__ = ["BurstLog", "GatedAsyncQueuePool", "GatedPool", "GatedQueuePool", "WaitQueue"]

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


class WaitQueue:
    """The wait bound of one database's pool, kept across ``dispose()`` (which makes a new
    pool) together with its counters.

    ``waiting``: checkouts waiting now; ``rejected`` and ``timeouts``: refusals since
    start. It knows nothing of the pool: the pool asks it for a place in the queue and
    reports a timeout; the refusal rule itself is :meth:`GatedPool.would_refuse`.

    A connection returned while checkouts wait is handed to the longest waiting one: from
    that moment that checkout no longer waits, though it has not yet woken up to take the
    connection (an event-loop turn or a thread switch later). The pool says so
    (:meth:`handing_off`), so that a newcomer arriving in that instant is not refused
    because of a waiter already served.
    """

    def __init__(
        self,
        database: str,
        *,
        limit: int | None,
        retry_after: int = 1,
        burst_log: BurstLog | None = None,
    ) -> None:
        self.database = database
        self.limit = limit
        self.retry_after = retry_after
        self.burst_log = burst_log or BurstLog()
        self._waiting = 0
        self._handoffs = 0  # waiters a returned connection is on its way to
        self.rejected = 0
        self.timeouts = 0
        self._lock = threading.Lock()

    @property
    def waiting(self) -> int:
        """Checkouts waiting now, not counting those a connection is on its way to."""
        return self._waiting - self._handoffs

    def full(self) -> bool:
        limit = self.limit
        return limit is not None and self.waiting >= limit

    def enter(self, *, force: bool = False) -> bool:
        """Take a place in the queue; False (nothing taken) when it is full, unless
        ``force``: the pool knows the checkout will be served at once."""
        with self._lock:
            if self.full() and not force:
                return False
            self._waiting += 1
            return True

    def leave(self) -> None:
        """A waiting checkout is done: served, timed out or cancelled."""
        with self._lock:
            self._waiting -= 1
            self._handoffs = max(0, min(self._handoffs - 1, self._waiting))

    def handing_off(self) -> None:
        """A connection is being returned to an empty pool while checkouts wait."""
        with self._lock:
            if self._handoffs < self._waiting:
                self._handoffs += 1

    def overloaded(self, capacity: int | None) -> PoolOverloaded:
        """Count a refusal and return its error (logged once per burst)."""
        with self._lock:
            self.rejected += 1
        error = PoolOverloaded(
            self.database,
            f"database {self.database!r} is overloaded: all {capacity} connections "
            f"are in use and {self.waiting} requests already wait (limit {self.limit})",
            retry_after=self.retry_after,
        )
        self.burst_log.record(error)
        return error

    def timed_out(self, pool: QueuePool) -> PoolTimeout:
        """Count a wait that ran out and return its error (logged once per burst)."""
        with self._lock:
            self.timeouts += 1
        error = PoolTimeout(
            self.database,
            f"database {self.database!r}: no connection free within {pool.timeout():.2f}s "
            f"(pool size {pool.size()}, overflow {pool.overflow()}, "
            f"{pool.checkedout()} checked out, {self.waiting} waiting)",
            retry_after=self.retry_after,
        )
        self.burst_log.record(error)
        return error


class _Turn:
    """A checkout waiting its turn: the connection handed to it, and how to wake it."""

    __slots__ = ("record", "wake")

    def __init__(self) -> None:
        self.record: ConnectionPoolEntry | None = None
        self.wake: Callable[[], None] = _nothing


def _nothing() -> None:
    pass


class GatedPool(QueuePool):
    """A QueuePool with a bounded wait queue (:class:`WaitQueue`) and lingering overflow.

    **The refusal rule**, in one place (:meth:`would_refuse`): a checkout is refused at
    once, with :class:`PoolOverloaded`, when no connection is idle, none may be opened,
    and the wait queue is full. Checkouts apply it in ``_do_get``; the web integration
    asks it earlier, before routing and before a session starts, to refuse a request
    before any of its work is done. A wait that runs out raises :class:`PoolTimeout`.
    Both are also ``sqlalchemy.exc.TimeoutError``.

    **Waiters are served in order** (as psycopg_pool's and HikariCP's hand-off queues
    do): a connection returned while checkouts wait goes straight to the longest waiting
    one, never through the idle set, so a newcomer cannot take it on the way and a
    waiter's wait is bounded by the queue ahead of it. (Through SQLAlchemy's own queue, a
    woken waiter that lost its connection to a newcomer went to the back of the line;
    under a burst some waited their whole ``pool_timeout``.)

    It overrides ``_do_get`` and ``_do_return_conn``, the hooks SQLAlchemy's ``Pool``
    provides to its implementations (see :mod:`pooltender.compat`), reads the pool
    through its public counters (``size()``, ``checkedin()``, ``checkedout()``,
    ``overflow()``), and takes an idle connection from SQLAlchemy's queue without
    waiting (``compat.take_idle``).

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
        wait_queue: WaitQueue | None = None,
        overflow_idle_timeout: float = 0.0,
        on_wait: Callable[[float], None] | None = None,
        **kw: Any,
    ) -> None:
        super().__init__(creator, pool_size=pool_size, max_overflow=max_overflow, **kw)
        self.wait_queue = wait_queue
        self.overflow_idle_timeout = overflow_idle_timeout
        self.on_wait = on_wait
        """Receives the seconds each checkout took (waiting, and opening if needed)."""
        self.capacity: int | None = (
            None if pool_size == 0 or max_overflow < 0 else pool_size + max_overflow
        )
        """The most connections this pool may hold at once; ``None``: unbounded."""
        # Returned overflow connections kept open, oldest first: (returned at, record).
        self._spares: collections.deque[tuple[float, ConnectionPoolEntry]] = collections.deque()
        self._spares_lock = threading.Lock()
        # Checkouts waiting for a connection, first come first served (see _do_get).
        self._turns: collections.deque[_Turn] = collections.deque()
        self._turns_lock = threading.Lock()

    def would_wait(self) -> bool:
        """True when a checkout now would wait: every connection is in use, none may be
        opened, or others already wait their turn."""
        if not self._at_capacity():
            return False
        return bool(self._turns) or super().checkedin() + len(self._spares) <= 0

    def _at_capacity(self) -> bool:
        capacity = self.capacity
        return capacity is not None and super().checkedout() + super().checkedin() >= capacity

    def would_refuse(self) -> bool:
        """True when a checkout now would be refused at once (the refusal rule)."""
        queue = self.wait_queue
        return queue is not None and queue.full() and self.would_wait()

    def refuse_if_saturated(self) -> None:
        """Raise (and count) :class:`PoolOverloaded` if a checkout now would be refused."""
        if self.would_refuse():
            assert self.wait_queue is not None
            raise self.wait_queue.overloaded(self.capacity)

    def _do_get(self) -> ConnectionPoolEntry:
        start = time.perf_counter()
        queue = self.wait_queue
        record: ConnectionPoolEntry | None = None
        if queue is None:
            record = self._take_idle()
        else:
            turn: _Turn | None = None
            with self._turns_lock:
                if not self._turns:  # first come, first served: none waits ahead
                    record = self._take_idle()
                if record is None and self._at_capacity():
                    if not queue.enter():
                        raise queue.overloaded(self.capacity)
                    turn = _Turn()
                    self._turns.append(turn)
            if turn is not None:
                record = self._wait_turn(turn, queue)
        if record is None:  # below capacity: SQLAlchemy opens one
            try:
                record = super()._do_get()
            except sa_exc.TimeoutError:  # another thread took the last place meanwhile
                if queue is None:
                    raise
                raise queue.timed_out(self) from None
        if self.on_wait is not None:
            self.on_wait(time.perf_counter() - start)
        return record

    def _take_idle(self) -> ConnectionPoolEntry | None:
        """An idle connection, taken at once, or ``None``: SQLAlchemy's queue first (its
        order: FIFO, or LIFO with ``pool_use_lifo``), then the newest spare. Never waits
        (compat, 9): on SQLAlchemy 2.0 the async queue's blocking ``get`` hands even an
        available connection over some event-loop turns later, a window in which it looks
        idle to every other checkout."""
        record = compat.take_idle(self)
        if record is None and self._spares:
            with self._spares_lock:
                record = self._spares.pop()[1] if self._spares else None
        return record

    def _serve_waiters(self) -> None:
        """Hand idle connections to checkouts waiting their turn. Only ever needed with
        threads: a checkout may join the line between another thread's look at it and that
        thread's return of a connection into the idle set."""
        while self._turns:
            with self._turns_lock:
                if not self._turns:
                    return
                record = self._take_idle()
                if record is None:
                    return
                self._hand(self._turns.popleft(), record)

    def _hand(self, turn: _Turn, record: ConnectionPoolEntry) -> None:
        """Give ``record`` to the waiting ``turn`` (the caller holds the turns lock)."""
        turn.record = record
        if self.wait_queue is not None:
            self.wait_queue.handing_off()
        turn.wake()

    def _wait_turn(self, turn: _Turn, queue: WaitQueue) -> ConnectionPoolEntry:
        """Wait until a returned connection is handed to ``turn`` or time runs out."""
        try:
            self._sleep(turn, self.timeout())
        except BaseException:
            handed = self._withdraw(turn, queue)
            if handed is not None:  # cancelled just after its connection came: pass it on
                self._do_return_conn(handed)
            raise
        handed = self._withdraw(turn, queue)
        if handed is None:
            raise queue.timed_out(self)
        return handed

    def _withdraw(self, turn: _Turn, queue: WaitQueue) -> ConnectionPoolEntry | None:
        """Leave the line; the connection handed to ``turn``, if one was."""
        with self._turns_lock:
            handed, turn.record = turn.record, None
            if handed is None:
                self._turns.remove(turn)
        queue.leave()
        return handed

    def _sleep(self, turn: _Turn, timeout: float) -> None:
        """Block until ``turn`` is woken or ``timeout`` seconds pass (threads)."""
        event = threading.Event()
        turn.wake = event.set
        if turn.record is None:  # not handed over between the append and now
            event.wait(timeout)

    def _do_return_conn(self, record: ConnectionPoolEntry) -> None:
        if self._turns:
            with self._turns_lock:
                if self._turns:
                    # Straight to the longest waiter: nobody can take it on the way.
                    self._hand(self._turns.popleft(), record)
                    return
        now = time.monotonic()
        if self.overflow_idle_timeout > 0 and super().checkedin() >= self.size():
            with self._spares_lock:
                self._spares.append((now, record))
        else:
            super()._do_return_conn(record)
        if self._turns:
            self._serve_waiters()
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
        assert isinstance(new, GatedPool)
        new.wait_queue = self.wait_queue
        new.overflow_idle_timeout = self.overflow_idle_timeout
        new.on_wait = self.on_wait
        return new


class GatedQueuePool(GatedPool):
    """:class:`QueuePool` with admission control (sync engines)."""

    # Log where users already configure SQLAlchemy's pool logging (pooltender.compat, 2).
    _sqla_logger_namespace = "sqlalchemy.pool.impl.QueuePool"


class GatedAsyncQueuePool(GatedPool, AsyncAdaptedQueuePool):
    """:class:`AsyncAdaptedQueuePool` with admission control (async engines)."""

    _sqla_logger_namespace = "sqlalchemy.pool.impl.AsyncAdaptedQueuePool"  # compat, 2

    def _sleep(self, turn: _Turn, timeout: float) -> None:
        """Await (inside SQLAlchemy's greenlet) until ``turn`` is woken or time runs out."""
        loop = asyncio.get_running_loop()
        woken = loop.create_future()

        def wake() -> None:
            # From any thread: a connection may come back from another one.
            loop.call_soon_threadsafe(_settle, woken)

        turn.wake = wake
        if turn.record is not None:  # handed over between the append and now
            return
        assert compat.await_ is not None  # compat.verify() ran before any engine
        with contextlib.suppress(TimeoutError):
            compat.await_(asyncio.wait_for(woken, timeout))


def _settle(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
