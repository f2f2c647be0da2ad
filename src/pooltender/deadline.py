"""A client-side deadline for psycopg's async connections.

asyncpg gives up a statement after its ``command_timeout``. psycopg has no such
option: when the network drops packets silently, the server's statement timeout
cannot help (its answer never arrives), and the request would wait for the kernel's
TCP retransmission timeout, minutes. Cancelling the waiting task does not help
either: psycopg then asks the server to cancel the query, over the same dead
network, and waits for that too.

So each operation that waits for the server (``execute``, ``executemany``,
``commit``, ``rollback``) arms a timer. When it fires, the connection's socket is shut
down: psycopg, woken at once, finds the connection closed and raises
``OperationalError``; SQLAlchemy sees a lost connection and the pool drops it; the
request answers ``503``. The connection is marked, so the error can say why.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import Iterator
from typing import Any

__all__ = ["DEADLINE_EXPIRED", "psycopg_connect_args"]

DEADLINE_EXPIRED = "pooltender_deadline_expired"
"""Set (to the deadline in seconds) on a connection whose deadline shut it down."""


def _shut_down(connection: Any, seconds: float) -> None:
    try:
        fd = connection.pgconn.socket
    except Exception:  # already closed: nothing is waiting on it
        return
    setattr(connection, DEADLINE_EXPIRED, seconds)
    duplicate = socket.socket(fileno=os.dup(fd))
    try:
        duplicate.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    finally:
        duplicate.close()


@contextlib.contextmanager
def _deadline(connection: Any, seconds: float) -> Iterator[None]:
    timer = asyncio.get_running_loop().call_later(seconds, _shut_down, connection, seconds)
    try:
        yield
    finally:
        timer.cancel()


def psycopg_connect_args(seconds: float) -> dict[str, Any]:
    """``connect_args`` giving psycopg's async connections a ``seconds`` deadline."""
    import psycopg

    class DeadlineCursor(psycopg.AsyncCursor[Any]):
        async def execute(self, *args: Any, **kwargs: Any) -> Any:
            with _deadline(self.connection, seconds):
                return await super().execute(*args, **kwargs)

        async def executemany(self, *args: Any, **kwargs: Any) -> None:
            with _deadline(self.connection, seconds):
                await super().executemany(*args, **kwargs)

    class DeadlineConnection(psycopg.AsyncConnection[Any]):
        async def commit(self) -> None:
            with _deadline(self, seconds):
                await super().commit()

        async def rollback(self) -> None:
            with _deadline(self, seconds):
                await super().rollback()

    return {"cursor_factory": DeadlineCursor, "async_creator_fn": DeadlineConnection.connect}
