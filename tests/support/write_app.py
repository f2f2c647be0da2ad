"""The fault service with ``install(app, cancel_abandoned=True)``'s middleware and two
slow writes, for the abandoned-request tests.

Importing this module adds them to :mod:`tests.support.app`'s ``app`` in this process
only (the other fault tests and the fuzz test serve that module alone).
"""

from __future__ import annotations

import os
from typing import Annotated

from fastapi import Query
from sqlalchemy import text

from pooltender.fastapi import Session, finish_when_abandoned
from pooltender.fastapi.abandoned import CancelOnDisconnect
from tests.support.app import app

# What install(app, cancel_abandoned=True) adds (here outside the admission gate, which
# makes no difference to these tests).
app.add_middleware(CancelOnDisconnect)

__all__ = ["app"]


WRITES = os.environ.get("T5_WRITES", "t5_writes")


async def _write_sleep_write(session: Session, key: str, seconds: float) -> None:
    # Two rows around a sleep: an abandoned request must leave neither.
    insert = text(f"INSERT INTO {WRITES} (key) VALUES (:k)")
    await session.execute(insert, {"k": key})
    await session.execute(text("SELECT pg_sleep(CAST(:s AS float))"), {"s": seconds})
    await session.execute(insert, {"k": key})


@app.post("/write-slowly")
async def write_slowly(
    key: str, seconds: Annotated[float, Query(ge=0, le=2)], session: Session
) -> dict[str, str]:
    """Write, sleep, write: cancelled (and rolled back) when the client goes away."""
    await _write_sleep_write(session, key, seconds)
    return {"key": key}


@app.post("/write-slowly-to-the-end")
@finish_when_abandoned
async def write_slowly_to_the_end(
    key: str, seconds: Annotated[float, Query(ge=0, le=2)], session: Session
) -> dict[str, str]:
    """The same, opted out: it commits even when the client has gone."""
    await _write_sleep_write(session, key, seconds)
    return {"key": key}
