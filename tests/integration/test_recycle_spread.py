"""Connections opened together are replaced spread out (pooltender.recycle), on the real
PostgreSQL: a pool of 20 warmed at start, ``DATABASE_POOL_RECYCLE=10``, a steady load;
the replacements' connects are counted per second from the pool's ``connect`` events.
The same for an engine the app built with ``pool_recycle=10`` and pooltender adopted."""

from __future__ import annotations

import asyncio
import time

import pytest
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import create_async_engine

from pooltender import Database, DatabaseSettings
from tests.support.pg import PG_URL

POOL = 20
RECYCLE = 10
RUN = 17.0  # seconds of load after the warm-up: past every first replacement, before a second


@pytest.mark.parametrize("adopted", [False, True], ids=["own", "adopted"])
async def test_a_warmed_pool_is_replaced_spread_over_seconds_a_quarter_at_most_per_second(
    adopted: bool,
) -> None:
    if adopted:  # the app's own engine, its own pool_recycle
        own = create_async_engine(PG_URL, pool_size=POOL, max_overflow=0, pool_recycle=RECYCLE)
        db = Database.adopt(own, environ={}, env_file=None)
    else:
        db = Database(
            DatabaseSettings(url=PG_URL, pool_size=POOL, max_overflow=0, pool_recycle=RECYCLE)
        )
    await db.start()  # opens the 20 at once
    connects: list[float] = []
    event.listen(db.engine.sync_engine, "connect", lambda *args: connects.append(time.monotonic()))
    warmed = time.monotonic()
    stop = asyncio.Event()

    async def client() -> None:
        while not stop.is_set():
            async with db.connection() as connection:
                await connection.execute(text("SELECT 1"))
            await asyncio.sleep(0.005)

    try:
        assert db.stats().connections_created == POOL
        clients = [asyncio.create_task(client()) for _ in range(4)]
        await asyncio.sleep(RUN)
        stop.set()
        await asyncio.gather(*clients)
        stats = db.stats()
    finally:
        await db.stop()
        if adopted:
            await own.dispose()

    offsets = sorted(t - warmed for t in connects)
    print("replacements (s after the warm-up):", " ".join(f"{t:.2f}" for t in offsets))
    # Every connection replaced once; none lost or invalidated on the way.
    assert len(offsets) == POOL, offsets
    assert stats.connections_created == 2 * POOL and stats.connections_invalidated == 0
    # Not before 90 % of the lifetime (the largest jitter), and spread out over at least
    # a tenth of it; in no one-second window more than a quarter of the pool.
    assert offsets[0] >= RECYCLE * 0.9 - 0.5
    assert offsets[-1] - offsets[0] >= RECYCLE / 10
    busiest = max(sum(1 for u in offsets if t <= u < t + 1.0) for t in offsets)
    print(f"spread {offsets[-1] - offsets[0]:.2f} s, at most {busiest} in one second")
    assert busiest <= POOL // 4
