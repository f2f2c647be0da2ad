"""Engines and ``fork()``: a child process never uses its parent's pooled sockets.

A pool copied into a forked child (gunicorn's pre-fork workers, ``multiprocessing``
with the fork start method) shares its sockets with the parent: two processes
talking over one PostgreSQL connection corrupt each other's results. SQLAlchemy's
answer is ``engine.dispose(close=False)`` in the child: the child forgets the
inherited connections without closing them (they still belong to the parent) and
opens its own on first use.

Every engine :func:`pooltender.build_engine` builds is registered here, and one
``os.register_at_fork(after_in_child=...)`` hook disposes them all in each child.
``install(app)`` builds its pools in the app's lifespan, which runs after the fork,
so it needs none of this; the hook covers apps that build engines at import time.
Register engines built elsewhere with :func:`dispose_after_fork`.
"""

from __future__ import annotations

import logging
import os
import weakref

from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncEngine

__all__ = ["dispose_after_fork"]

logger = logging.getLogger("pooltender.fork")

_engines: weakref.WeakSet[Engine] = weakref.WeakSet()


def dispose_after_fork(engine: Engine | AsyncEngine) -> None:
    """Have a forked child drop ``engine``'s inherited connections (parent's stay open)."""
    _engines.add(engine.sync_engine if isinstance(engine, AsyncEngine) else engine)


def _after_fork_in_child() -> None:
    for engine in list(_engines):
        engine.dispose(close=False)


if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=_after_fork_in_child)
