"""Spread-out recycling: connections opened together are not replaced together.

SQLAlchemy's ``pool_recycle`` replaces a connection at the first checkout after it is
``pool_recycle`` seconds old. Connections opened together (the warm-up at start, a
traffic ramp) then all reach that age in the same second and are all reopened at once:
a burst of connects on the server, and a latency spike in the service, every
``pool_recycle`` seconds. pooltender replaces connections itself (SQLAlchemy's own
recycle is left off), with two rules:

- **jitter**: each connection's lifetime is ``DATABASE_POOL_RECYCLE`` shortened by a
  random 0 to 10 % (:data:`JITTER`; psycopg_pool's ``max_lifetime`` does the same), drawn
  when it is opened: with the default 3600 s, between 3240 s and 3600 s;
- **pace**: at most a quarter of the pool size (at least one) is replaced within any one
  second (:func:`pace`); a connection due while that many were just replaced is kept
  until a later checkout, so no connection outlives its lifetime by more than about
  ``4 x`` the number of connections due at once divided by the pool size, in seconds
  (4 s for a whole pool due together).

The lifetime is kept in ``ConnectionPoolEntry.info`` at ``connect``; the ``checkout``
event replaces a connection past it by raising ``DisconnectionError``, SQLAlchemy's
documented way for a checkout listener to have a connection replaced.
"""

from __future__ import annotations

import collections
import random
import threading
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import event, exc
from sqlalchemy.engine import Engine
from sqlalchemy.pool import ConnectionPoolEntry

__all__ = ["EXPIRES", "JITTER", "RecycleDue", "install_recycle", "pace"]

JITTER = 0.1
"""The largest fraction of ``DATABASE_POOL_RECYCLE`` a connection's lifetime is shortened by."""

EXPIRES = "pooltender_expires"
"""``ConnectionPoolEntry.info`` key: ``time.monotonic()`` when the connection is due."""


class RecycleDue(exc.DisconnectionError):
    """A connection reached its lifetime: replaced at checkout (not a lost connection)."""

    pooltender_recycled = True


def pace(pool_size: int) -> int:
    """Connections replaced at most within any one second: a quarter of the pool, at
    least one."""
    return max(1, pool_size // 4)


def install_recycle(
    engine: Engine,
    recycle: float,
    pool_size: int,
    *,
    draw: Callable[[], float] = random.random,
) -> None:
    """Replace ``engine``'s connections after ``recycle`` seconds less a random 0 to
    :data:`JITTER` of it, at most :func:`pace` per second (see the module docstring)."""
    limit = pace(pool_size)
    recent: collections.deque[float] = collections.deque()
    lock = threading.Lock()

    @event.listens_for(engine, "connect")
    def _lifetime(dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
        record.info[EXPIRES] = time.monotonic() + recycle * (1.0 - JITTER * draw())

    # Before the pre-ping: a connection about to be replaced needs no ping.
    @event.listens_for(engine, "checkout", insert=True)
    def _due(dbapi_connection: Any, record: ConnectionPoolEntry, proxy: Any) -> None:
        expires = record.info.get(EXPIRES)
        now = time.monotonic()
        if expires is None or now < expires:
            return
        with lock:
            while recent and recent[0] <= now - 1.0:
                recent.popleft()
            if len(recent) >= limit:
                return  # enough replaced this second: keep it for now
            recent.append(now)
        raise RecycleDue(f"the connection reached its lifetime ({recycle:g} s less jitter)")
