"""Readiness: can a database serve requests now? For ``/health/ready`` and the like.

A readiness probe must never queue behind the requests it reports on: when every
connection is in use and none may be opened, a ``SELECT 1`` would wait for the pool
like any request (and then time out, taking the instance out of a load balancer for
being busy). So a saturated pool counts as reachable when it lent a connection in the
last :data:`BUSY_GRACE` seconds (busy, not broken), and as overloaded otherwise.
"""

from __future__ import annotations

import time
from typing import Literal

from .database import Database
from .errors import PoolOverloaded

__all__ = ["BUSY_GRACE", "readiness"]

BUSY_GRACE = 10.0
"""Seconds after a checkout during which an exhausted pool counts as ready."""


async def readiness(database: Database, timeout: float = 2.0) -> Literal["ok", "busy"]:
    """``"ok"`` after a ``SELECT 1`` within ``timeout``; ``"busy"`` for an exhausted pool
    that is still lending connections. Raises :class:`~pooltender.DatabaseUnavailable`
    (or :class:`TimeoutError`) otherwise."""
    pool = database.pool
    if pool is not None and pool.would_wait():
        idle_for = time.monotonic() - database.monitor.last_checkout
        if idle_for <= BUSY_GRACE:
            return "busy"
        raise PoolOverloaded(
            database.name,
            f"database {database.name!r}: every connection is in use and none was checked "
            f"out in the last {idle_for:.0f}s",
            retry_after=database.settings.retry_after,
        )
    await database.ping(timeout)
    return "ok"
