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
- **pace**: replacements start at least ``1 / pace`` seconds apart, and each after the
  previous one's new connection is open (:func:`pace`: a quarter of the pool size, at
  least one, per second), so no one second sees more than a quarter of the pool
  reopened. A connection due while another was just replaced is kept until a later
  checkout: when the whole pool is due at once, the last one is replaced about 4 s late.

The lifetime is kept in ``ConnectionPoolEntry.info`` at ``connect``; the ``checkout``
event replaces a connection past it by raising ``DisconnectionError``, SQLAlchemy's
documented way for a checkout listener to have a connection replaced.
"""

from __future__ import annotations

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
    """Connections replaced per second at most: a quarter of the pool, at least one."""
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
    spacing = 1.0 / pace(pool_size)
    last = -spacing  # monotonic: the last replacement began, or its connection opened
    replacing: set[int] = set()  # records whose replacement is being opened
    lock = threading.Lock()

    @event.listens_for(engine, "connect")
    def _lifetime(dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
        nonlocal last
        now = time.monotonic()
        record.info[EXPIRES] = now + recycle * (1.0 - JITTER * draw())
        if id(record) in replacing:
            with lock:
                replacing.discard(id(record))
                last = max(last, now)

    # Before the pre-ping: a connection about to be replaced needs no ping.
    @event.listens_for(engine, "checkout", insert=True)
    def _due(dbapi_connection: Any, record: ConnectionPoolEntry, proxy: Any) -> None:
        nonlocal last
        expires = record.info.get(EXPIRES)
        now = time.monotonic()
        if expires is None or now < expires:
            return
        with lock:
            if now < last + spacing:
                return  # another was just replaced: keep this one for now
            last = now
            replacing.add(id(record))
        raise RecycleDue(f"the connection reached its lifetime ({recycle:g} s less jitter)")
