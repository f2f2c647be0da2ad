"""``PoolMonitor``: one database's pool, observed through SQLAlchemy pool events.

The listeners run inside every checkout and check-in, so they do little: bump
counters, record a duration in a fixed-size histogram, walk the stack to the user's
frame, put or take one entry in the table of connections held now. No I/O, no log
line, and no lock: each thread writes its own :class:`_Stats` (a thread-local
shard), the held table is a ``dict`` (one atomic operation per call), and messages
for the log go to a ``deque`` that the watchdog thread drains
(:mod:`pooltender.monitor.watchdog`). Readers merge the shards into a snapshot.

Listeners are registered on the engine, which SQLAlchemy attaches to its pool and
carries over to the new pool ``dispose()`` creates.
"""

from __future__ import annotations

import itertools
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.pool import ConnectionPoolEntry

from ..compat import getframe
from .context import RequestContext, current_request, route_of
from .histogram import Histogram
from .sites import Site, capture

__all__ = ["OTHER_ROUTES", "Checkout", "PoolMonitor", "Report"]

OTHER_ROUTES = "(other routes)"
"""Where checkouts of routes beyond ``max_routes`` are counted (memory stays bounded)."""

Report = tuple[str, "Checkout", float]
"""``(kind, held, seconds)`` queued for the log: ``returned``, ``reclaimed``, ``after_response``."""


class _Stats:
    """One thread's figures. Only its own thread writes it."""

    __slots__ = (
        "after_response",
        "checkouts",
        "connect",
        "created",
        "invalidated",
        "reclaimed",
        "routes",
        "wait",
    )

    def __init__(self) -> None:
        self.checkouts = 0
        self.created = 0
        self.invalidated = 0
        self.reclaimed = 0
        self.after_response = 0
        self.wait = Histogram()
        self.connect = Histogram()
        self.routes: dict[str, Histogram] = {}

    def merge(self, other: _Stats, max_routes: int) -> None:
        self.checkouts += other.checkouts
        self.created += other.created
        self.invalidated += other.invalidated
        self.reclaimed += other.reclaimed
        self.after_response += other.after_response
        self.wait.merge(other.wait)
        self.connect.merge(other.connect)
        for route, hist in list(other.routes.items()):
            mine = self.routes.get(route)
            if mine is None:
                if len(self.routes) >= max_routes and route != OTHER_ROUTES:
                    mine = self.routes.setdefault(OTHER_ROUTES, Histogram())
                else:
                    mine = self.routes[route] = Histogram()
            mine.merge(hist)


class _ThreadToken:
    """Lives in a thread's local storage; its finalizer retires the thread's shard."""

    __slots__ = ("__weakref__", "stats")

    def __init__(self, stats: _Stats) -> None:
        self.stats = stats


class _FairyRef(weakref.ref):  # type: ignore[type-arg]
    __slots__ = ("key",)
    key: int


class Checkout:
    """A connection checked out now: who took it, where, and when."""

    __slots__ = (
        "context",
        "id",
        "leak",
        "reclaimed",
        "ref",
        "route",
        "site",
        "started",
    )

    def __init__(
        self, id: int, started: float, route: str, context: RequestContext | None, site: Site
    ) -> None:
        self.id = id
        self.started = started
        self.route = route
        self.context = context
        self.site = site
        self.leak = False
        self.reclaimed = False
        self.ref: _FairyRef | None = None

    @property
    def after_response(self) -> bool:
        """Taken before its request's response started, and still held after."""
        context = self.context
        return (
            context is not None
            and context.response_started is not None
            and self.started < context.response_started
        )


class PoolMonitor:
    """Counters, durations and the held-connection table of one database's pool."""

    def __init__(self, database: str, *, leak_threshold: float, max_routes: int = 100) -> None:
        self.database = database
        self.leak_threshold = leak_threshold
        self.max_routes = max_routes
        self.held: dict[int, Checkout] = {}
        self.reports: deque[Report] = deque(maxlen=1000)
        self.observers: list[Callable[[str, float, str | None], None]] = []
        """Called with ``(kind, seconds, route)`` for each duration measured (``create``,
        ``wait``, ``use``): the OpenTelemetry histograms. Empty: no cost."""
        # Written by the watchdog thread only (scan_leaks, loop_blocked_*).
        self.leaks_suspected = 0
        self.loop_blocked = 0
        self.loop_blocked_max = 0.0
        self.last_checkout = 0.0  # time.monotonic() of the last checkout
        self._ids = itertools.count(1)
        self._local = threading.local()
        self._live: dict[int, _Stats] = {}
        self._retired = _Stats()
        # Taken by readers and by a thread's exit, never by a checkout or check-in.
        self._merge_lock = threading.Lock()
        self._reclaimed = self._on_reclaimed  # one bound method, not one per checkout

    def __repr__(self) -> str:
        return f"<PoolMonitor {self.database!r} held={len(self.held)}>"

    # -- wiring --------------------------------------------------------------------------

    def attach(self, engine: Engine) -> None:
        """Listen to ``engine``'s pool (and to the pools ``dispose()`` makes later)."""
        for name, fn in self._listeners():
            event.listen(engine, name, fn)

    def _listeners(self) -> list[tuple[str, Any]]:
        return [
            ("checkout", self._on_checkout),
            ("checkin", self._on_return),
            ("detach", self._on_return),
            ("invalidate", self._on_invalidate),
        ]

    # -- hot path ------------------------------------------------------------------------

    def _stats(self) -> _Stats:
        try:
            token: _ThreadToken = self._local.token
        except AttributeError:
            return self._new_shard()
        return token.stats

    def _new_shard(self) -> _Stats:
        stats = _Stats()
        token = _ThreadToken(stats)
        self._live[id(stats)] = stats
        self._local.token = token
        weakref.finalize(token, self._retire, stats)
        return stats

    def _retire(self, stats: _Stats) -> None:
        with self._merge_lock:
            self._retired.merge(stats, self.max_routes)
            self._live.pop(id(stats), None)

    def on_wait(self, seconds: float) -> None:
        """Time a checkout took to obtain a connection (the pool's ``on_wait``)."""
        self._stats().wait.record(seconds)
        if self.observers:
            self._observe("wait", seconds, None)

    def on_connect_time(self, seconds: float) -> None:
        """Time a new connection took to open (``build_engine(on_connect_time=)``)."""
        stats = self._stats()
        stats.created += 1
        stats.connect.record(seconds)
        if self.observers:
            self._observe("create", seconds, None)

    def _on_checkout(self, dbapi_connection: Any, record: ConnectionPoolEntry, proxy: Any) -> None:
        now = time.perf_counter()
        self._stats().checkouts += 1
        context = current_request.get()
        held = Checkout(next(self._ids), now, route_of(context), context, capture(getframe(1)))
        key = id(record)
        ref = _FairyRef(proxy, self._reclaimed)
        ref.key = key
        held.ref = ref
        self.held[key] = held
        self.last_checkout = time.monotonic()

    def _on_return(self, dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
        # Checked in, or detached from the pool: either way no longer held.
        held = self.held.pop(id(record), None)
        if held is not None:
            self._end(held)

    def _observe(self, kind: str, seconds: float, route: str | None) -> None:
        for observer in list(self.observers):
            observer(kind, seconds, route)

    def _on_invalidate(
        self, dbapi_connection: Any, record: ConnectionPoolEntry, exception: BaseException | None
    ) -> None:
        if getattr(exception, "pooltender_recycled", False):
            return  # replaced at the end of its lifetime (pooltender.recycle), not lost
        self._stats().invalidated += 1

    def _on_reclaimed(self, ref: _FairyRef) -> None:
        # The garbage collector took the checked-out connection's proxy: nobody
        # returned it. SQLAlchemy's own clean-up (check-in or detach) follows.
        held = self.held.get(ref.key)
        if held is not None and held.ref is ref:
            held.reclaimed = True
            self._stats().reclaimed += 1
            self.reports.append(("reclaimed", held, time.perf_counter() - held.started))

    def _end(self, held: Checkout) -> None:
        used = time.perf_counter() - held.started
        stats = self._stats()
        routes = stats.routes
        hist = routes.get(held.route)
        if hist is None:
            route = held.route if len(routes) < self.max_routes else OTHER_ROUTES
            hist = routes.setdefault(route, Histogram())
        hist.record(used)
        if self.observers:
            self._observe("use", used, held.route)
        if held.leak:
            self.reports.append(("returned", held, used))
        if held.after_response and not held.reclaimed:
            stats.after_response += 1
            self.reports.append(("after_response", held, used))

    # -- readers -------------------------------------------------------------------------

    def stats(self) -> _Stats:
        """Every thread's figures merged (a copy)."""
        result = _Stats()
        with self._merge_lock:
            result.merge(self._retired, self.max_routes)
            for stats in list(self._live.values()):
                result.merge(stats, self.max_routes)
        return result

    def held_now(self) -> list[Checkout]:
        """The connections checked out now, oldest first."""
        return sorted(self.held.copy().values(), key=lambda h: h.started)

    def scan_leaks(self, now: float | None = None) -> list[Checkout]:
        """Newly suspected leaks (held past ``leak_threshold``), each returned once."""
        now = time.perf_counter() if now is None else now
        found = []
        for held in self.held.copy().values():
            if not held.leak and now - held.started >= self.leak_threshold:
                held.leak = True
                found.append(held)
        self.leaks_suspected += len(found)
        return found

    def loop_blocked_started(self) -> None:
        """The event loop stalled past the threshold while this pool held connections."""
        self.loop_blocked += 1

    def loop_blocked_ended(self, seconds: float) -> None:
        """The stall counted by :meth:`loop_blocked_started` lasted ``seconds``."""
        self.loop_blocked_max = max(self.loop_blocked_max, seconds)
