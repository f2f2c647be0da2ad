"""Who holds a connection, and since where: checkout tracking for tests.

A :class:`CheckoutTracker` listens to a pool's ``checkout``/``checkin`` events (and
to the lends of an :class:`~pooltender.testing.IsolatedDatabase`) and keeps, for
every connection held now, the *checkout site*: the first frame of the caller's own
code (``tests/test_api.py:42 in test_create``), found by walking the stack past
SQLAlchemy, pooltender, the web framework and the standard library, across the
greenlet boundary SQLAlchemy's asyncio layer puts between ``await`` and the pool.

:func:`pool_usage` opens a window on a tracker::

    with pool_usage(db) as usage:
        client.get("/users/1")
    assert usage.max_checked_out <= 1   # this endpoint used at most one connection

The walk costs a few microseconds per checkout: fine in tests, not meant for
production (the monitor does that job there).
"""

from __future__ import annotations

import contextlib
import itertools
import threading
import time
import weakref
from collections.abc import Hashable, Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncEngine

from ..compat import getframe
from ..monitor import sites

__all__ = [
    "CheckoutTracker",
    "Held",
    "PoolUsage",
    "check_leaks",
    "checkout_site",
    "leak_report",
    "pool_usage",
    "tracker_for",
]


def checkout_site(depth: int = 1) -> str:
    """``path:line in function`` of the first caller frame outside libraries.

    The same walk as the pool monitor's sites (:mod:`pooltender.monitor.sites`): the
    demo's routes and services installed in ``site-packages`` are the user's code.
    Paths under the current directory are shown relative to it. ``"unknown"`` when
    every frame belongs to a library.
    """
    site = sites.capture(getframe(depth), depth=1)
    return sites.format_site(site) if site else "unknown"


@dataclass(frozen=True)
class Held:
    """A connection checked out now: where from, and since when (``time.monotonic()``)."""

    id: int
    site: str
    since: float

    @property
    def age(self) -> float:
        return time.monotonic() - self.since


@dataclass
class PoolUsage:
    """What happened to one database's connections inside a :func:`pool_usage` block.

    ``checkouts``: connections handed out in the block; ``max_checked_out``: the most
    held at once (counting those already held when the block began);
    ``checked_out``: held now (at the block's end, once it has ended).
    """

    database: str
    checkouts: int = 0
    max_checked_out: int = 0
    checked_out: int = 0
    sites: list[str] = field(default_factory=list)


class CheckoutTracker:
    """The connections of one database held now, with their checkout sites.

    Feed it with :meth:`watch` (pool events of an engine) or with :meth:`acquire` /
    :meth:`release` (any other lending, keyed by an object). Thread-safe.
    """

    def __init__(self, database: str) -> None:
        self.database = database
        self.checkouts = 0
        self.max_checked_out = 0
        self._held: dict[int, Held] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._windows: list[PoolUsage] = []
        self._engines: list[Engine] = []

    def __repr__(self) -> str:
        return f"<CheckoutTracker {self.database!r} held={len(self._held)}>"

    @property
    def held(self) -> list[Held]:
        """Connections checked out now, oldest first."""
        with self._lock:
            return sorted(self._held.values(), key=lambda h: h.since)

    @property
    def checked_out(self) -> int:
        return len(self._held)

    def acquire(self, key: Hashable, *, site: str | None = None) -> None:
        """Record that the connection ``key`` was handed out (at ``site``, else the caller's)."""
        site = site or checkout_site(2)
        with self._lock:
            self._held[id(key)] = Held(next(self._ids), site, time.monotonic())
            self.checkouts += 1
            now = len(self._held)
            self.max_checked_out = max(self.max_checked_out, now)
            for window in self._windows:
                window.checkouts += 1
                window.max_checked_out = max(window.max_checked_out, now)
                window.sites.append(site)

    def release(self, key: Hashable) -> None:
        with self._lock:
            self._held.pop(id(key), None)

    # -- pool events -------------------------------------------------------------------

    def watch(self, engine: AsyncEngine | Engine) -> None:
        """Track every checkout of ``engine``'s pool from now on (survives ``dispose()``)."""
        sync_engine = engine.sync_engine if isinstance(engine, AsyncEngine) else engine
        event.listen(sync_engine, "checkout", self._on_checkout)
        event.listen(sync_engine, "checkin", self._on_checkin)
        self._engines.append(sync_engine)

    def unwatch(self) -> None:
        """Stop listening to every engine :meth:`watch` was given."""
        for engine in self._engines:
            event.remove(engine, "checkout", self._on_checkout)
            event.remove(engine, "checkin", self._on_checkin)
        self._engines.clear()

    def _on_checkout(self, dbapi_connection: Any, record: Any, proxy: Any) -> None:
        self.acquire(record, site=checkout_site(2))

    def _on_checkin(self, dbapi_connection: Any, record: Any) -> None:
        self.release(record)

    # -- windows -----------------------------------------------------------------------

    @contextlib.contextmanager
    def usage(self) -> Iterator[PoolUsage]:
        """A :class:`PoolUsage` filled while the block runs."""
        with self._lock:
            window = PoolUsage(self.database, max_checked_out=len(self._held))
            self._windows.append(window)
        try:
            yield window
        finally:
            with self._lock:
                self._windows.remove(window)
                window.checked_out = len(self._held)


_trackers: weakref.WeakKeyDictionary[Any, CheckoutTracker] = weakref.WeakKeyDictionary()


def tracker_for(target: Any) -> CheckoutTracker:
    """The tracker of a :class:`~pooltender.Database` or engine, created on first use.

    A database's tracker watches its engine, so the database must be started.
    """
    tracker = _trackers.get(target)
    if tracker is None:
        existing = getattr(target, "checkout_tracker", None)
        if isinstance(existing, CheckoutTracker):
            return existing
        if isinstance(target, AsyncEngine | Engine):
            tracker = CheckoutTracker(str(target.url.database or target.url))
            tracker.watch(target)
        else:
            tracker = CheckoutTracker(target.name)
            tracker.watch(target.engine if target.is_async else target.sync_engine)
        _trackers[target] = tracker
    return tracker


@contextlib.contextmanager
def pool_usage(target: Any) -> Iterator[PoolUsage]:
    """Count the checkouts of a database (or engine) while the block runs.

    ``target``: a started :class:`~pooltender.Database` (the test fixtures' included)
    or a SQLAlchemy engine.
    """
    with tracker_for(target).usage() as usage:
        yield usage


# The trackers whose databases belong to the running test (the pytest plugin resets
# and checks this list around each test; helpers add to it).
_leak_checked: list[CheckoutTracker] = []


def check_leaks(tracker: CheckoutTracker) -> None:
    """Fail the running test if ``tracker``'s database still lends a connection at its end."""
    if tracker not in _leak_checked:
        _leak_checked.append(tracker)


def leak_report(trackers: list[CheckoutTracker] | None = None) -> str | None:
    """One line per connection still held, naming its database and checkout site."""
    lines = [
        f"database {tracker.database!r}: connection #{held.id} checked out at {held.site}"
        f" (held {held.age:.3f}s)"
        for tracker in (_leak_checked if trackers is None else trackers)
        for held in tracker.held
    ]
    if not lines:
        return None
    count = len(lines)
    return (
        f"the test left {count} connection{'s' if count > 1 else ''} checked out:\n  "
        + "\n  ".join(lines)
    )
