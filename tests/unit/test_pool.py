"""Admission control on a real aiosqlite pool: bounded waiting, fail-fast errors."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
import sqlalchemy.exc
from sqlalchemy import text

from pooltender import Database, DatabaseSettings, PoolOverloaded, PoolTimeout
from pooltender.errors import DatabaseUnavailable
from pooltender.pool import BurstLog


def file_db(tmp_path: Path, **options: object) -> Database:
    return Database(
        DatabaseSettings(url=f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}", **options)
    )


async def test_full_wait_queue_is_refused_at_once(tmp_path: Path) -> None:
    db = file_db(tmp_path, pool_size=1, max_overflow=0, max_waiting=1)
    await db.start()
    release = asyncio.Event()

    async def holder() -> None:
        async with db.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
            await release.wait()

    holding = asyncio.create_task(holder())
    await asyncio.sleep(0.05)
    waiter = asyncio.create_task(holder())  # waits: the queue has room for one
    await asyncio.sleep(0.05)
    assert db.wait_queue.waiting == 1
    with pytest.raises(PoolOverloaded) as info:
        async with db.engine.connect():
            pass
    assert info.value.database == "primary"
    assert "all 1 connections are in use and 1 requests already wait (limit 1)" in str(info.value)
    assert db.wait_queue.rejected == 1
    release.set()
    await asyncio.gather(holding, waiter)
    assert db.engine.pool.checkedout() == 0  # type: ignore[attr-defined]
    assert db.wait_queue.waiting == 0
    await db.stop()


async def test_checkouts_arriving_together_on_an_idle_pool_respect_the_wait_bound(
    tmp_path: Path,
) -> None:
    """One connection, idle; four checkouts in the same instant: one takes it, one waits,
    two are refused. (On SQLAlchemy 2.0 the async queue hands an idle connection over some
    loop turns later; counting it as idle meanwhile let every arrival of that window queue
    past the bound.)"""
    db = file_db(tmp_path, pool_size=1, max_overflow=0, max_waiting=1, pool_timeout=5)
    await db.start()
    async with db.engine.connect():
        pass  # opened and idle
    release = asyncio.Event()

    async def use() -> str:
        try:
            async with db.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
                await release.wait()
        except PoolOverloaded:
            return "refused"
        return "served"

    tasks = [asyncio.create_task(use()) for _ in range(4)]
    await asyncio.sleep(0.1)
    release.set()
    outcomes = sorted(await asyncio.gather(*tasks))
    assert outcomes == ["refused", "refused", "served", "served"]
    assert db.wait_queue.rejected == 2
    await db.stop()


async def test_wait_that_runs_out_is_a_pool_timeout_with_the_real_numbers(tmp_path: Path) -> None:
    db = file_db(tmp_path, pool_size=1, max_overflow=0, pool_timeout=0.2, max_waiting=5)
    await db.start()
    async with db.engine.connect() as held:
        await held.execute(text("SELECT 1"))
        with pytest.raises(PoolTimeout) as info:
            async with db.engine.connect():
                pass
    # existing `except sqlalchemy.exc.TimeoutError` clauses keep working
    assert isinstance(info.value, sqlalchemy.exc.TimeoutError)
    assert isinstance(info.value, DatabaseUnavailable)
    assert "no connection free within 0.20s (pool size 1, overflow 0, 1 checked out" in str(
        info.value
    )
    assert db.wait_queue.timeouts == 1
    await db.stop()


async def test_the_wait_queue_survives_dispose(tmp_path: Path) -> None:
    db = file_db(tmp_path, pool_size=1, max_overflow=0, max_waiting=0)
    await db.start()
    await db.engine.dispose()  # recreates the pool
    pool = db.engine.pool
    assert pool.wait_queue is db.wait_queue  # type: ignore[attr-defined]
    async with db.engine.connect():
        with pytest.raises(PoolOverloaded):
            async with db.engine.connect():
                pass
    await db.stop()


def test_burst_log_writes_one_line_per_burst(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    log = BurstLog(quiet=10.0, clock=lambda: now[0])
    error = PoolOverloaded("primary", "database 'primary' is overloaded")
    with caplog.at_level(logging.WARNING, logger="pooltender.pool"):
        for _ in range(100):
            log.record(error)
            now[0] += 0.01
        assert len(caplog.records) == 1
        now[0] += 60  # quiet: the next failure opens a new burst and sums up the old one
        log.record(PoolTimeout("primary", "database 'primary': no connection free"))
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 3
    assert "burst over, 100 requests refused" in messages[1]
    assert "(100 overloaded)" in messages[1]
    assert messages[2].startswith("database 'primary': no connection free")


def _count_connects(db: Database) -> list[object]:
    """The connections opened from now on (``start()`` opened the pool's first)."""
    opened: list[object] = []
    sqlalchemy.event.listen(
        db.engine.sync_engine, "connect", lambda conn, record: opened.append(conn)
    )
    return opened


async def _hold_two(db: Database) -> None:
    """Check out two connections at once (the second is overflow), then return both."""
    async with db.engine.connect() as first, db.engine.connect() as second:
        await first.execute(text("SELECT 1"))
        await second.execute(text("SELECT 1"))


async def test_an_overflow_connection_lingers_instead_of_being_reopened(tmp_path: Path) -> None:
    db = file_db(tmp_path, pool_size=1, max_overflow=1, warmup=0)
    await db.start()
    opened = _count_connects(db)
    pool = db.engine.sync_engine.pool
    for _ in range(5):
        await _hold_two(db)
    # start() opened the pool's own connection; the overflow was opened once, not five
    # times (SQLAlchemy alone closes it on return and opens a new one each round)
    assert len(opened) == 1
    assert (pool.checkedin(), pool.checkedout(), pool.overflow()) == (2, 0, 1)  # type: ignore[attr-defined]
    stats = db.stats()
    assert (stats.available, stats.checked_out, stats.overflow) == (2, 0, 1)
    await db.stop()
    assert pool.checkedin() == 0  # type: ignore[attr-defined]  # dispose closed the spare


async def test_with_no_linger_an_overflow_connection_closes_on_return(tmp_path: Path) -> None:
    db = file_db(tmp_path, pool_size=1, max_overflow=1, warmup=0, overflow_idle_timeout=0)
    await db.start()
    opened = _count_connects(db)
    for _ in range(3):
        await _hold_two(db)
    assert len(opened) == 3  # a new overflow connection each round
    assert db.engine.sync_engine.pool.checkedin() == 1  # type: ignore[attr-defined]
    await db.stop()


async def test_a_spare_idle_past_the_timeout_is_closed_and_the_pool_shrinks(
    tmp_path: Path,
) -> None:
    db = file_db(tmp_path, pool_size=1, max_overflow=2, warmup=0, overflow_idle_timeout=0.05)
    await db.start()
    pool = db.engine.sync_engine.pool
    await _hold_two(db)
    assert (pool.checkedin(), pool.overflow()) == (2, 1)  # type: ignore[attr-defined]
    await asyncio.sleep(0.1)  # the spare is now idle for longer than its timeout
    async with db.engine.connect() as conn:  # served by the pool's own connection
        await conn.execute(text("SELECT 1"))
    # the return closed the idle spare: back to pool_size, overflow room free again
    assert (pool.checkedin(), pool.overflow()) == (1, 0)  # type: ignore[attr-defined]
    await _hold_two(db)
    await db.stop()


async def test_spares_serve_before_anyone_waits_or_is_refused(tmp_path: Path) -> None:
    db = file_db(tmp_path, pool_size=1, max_overflow=1, max_waiting=0, warmup=0)
    await db.start()
    opened = _count_connects(db)
    await _hold_two(db)  # one idle in the pool, one spare
    async with db.engine.connect() as first:
        await first.execute(text("SELECT 1"))
        async with db.engine.connect() as second:  # the spare, not a refusal
            await second.execute(text("SELECT 1"))
    assert len(opened) == 1  # the overflow, opened once
    assert db.wait_queue.rejected == 0
    await db.stop()


def test_a_waiter_a_connection_is_handed_to_no_longer_counts_as_waiting() -> None:
    """Between a connection's return and its waiter waking up (a few loop turns on
    SQLAlchemy 2.0), a newcomer is not refused because of a waiter already served."""
    from pooltender.pool import WaitQueue

    queue = WaitQueue("primary", limit=2)
    assert queue.enter() and queue.enter()
    assert queue.full() and not queue.enter()
    queue.handing_off()  # a connection came back: one waiter is being served
    assert queue.waiting == 1 and not queue.full()
    assert queue.enter()  # the newcomer waits in the place freed
    queue.leave()  # the served waiter wakes up and goes
    assert queue.waiting == 2
    queue.handing_off()
    queue.handing_off()
    queue.handing_off()  # never more hand-offs than waiters
    assert queue.waiting == 0
    queue.leave()
    queue.leave()
    assert queue.waiting == 0 and queue._handoffs == 0


async def test_waiters_are_served_in_order_and_a_newcomer_cannot_jump_the_line(
    tmp_path: Path,
) -> None:
    """A returned connection goes straight to the longest waiter. It is never idle on
    the way, so a checkout arriving at that instant queues behind instead of taking it
    (on SQLAlchemy 2.0 a woken waiter takes a few loop turns to pick its connection up)."""
    db = file_db(tmp_path, pool_size=1, max_overflow=0, max_waiting=5, pool_timeout=5)
    await db.start()
    pool = db.pool
    assert pool is not None
    served: list[str] = []
    at_return: dict[str, object] = {}
    release = {name: asyncio.Event() for name in ("holder", "a", "b", "c", "late")}

    async def use(name: str) -> None:
        conn = await db.engine.connect()
        served.append(name)
        await conn.execute(text("SELECT 1"))
        await release[name].wait()
        await conn.close()
        if name == "holder":  # no await since the connection came back
            at_return.update(idle=pool.checkedin(), would_wait=pool.would_wait())
            at_return.update(waiting=db.wait_queue.waiting)
            tasks.append(asyncio.create_task(use("late")))

    tasks = [asyncio.create_task(use("holder"))]
    await asyncio.sleep(0.05)
    for name in ("a", "b", "c"):
        tasks.append(asyncio.create_task(use(name)))
        await asyncio.sleep(0.02)  # each one waiting before the next arrives
    assert db.wait_queue.waiting == 3
    release["holder"].set()
    for name in ("a", "b", "c", "late"):
        await asyncio.sleep(0.05)
        release[name].set()
    while not all(task.done() for task in tasks):
        await asyncio.gather(*tasks)
    # The connection went to "a" directly: not idle, a newcomer would wait; "a" no
    # longer counts as waiting.
    assert at_return == {"idle": 0, "would_wait": True, "waiting": 2}
    assert served == ["holder", "a", "b", "c", "late"]
    assert db.wait_queue.waiting == 0 and db.wait_queue.timeouts == 0
    assert pool.checkedout() == 0
    await db.stop()


async def test_a_waiter_cancelled_as_its_connection_arrives_passes_it_on(tmp_path: Path) -> None:
    db = file_db(tmp_path, pool_size=1, max_overflow=0, max_waiting=5, pool_timeout=5)
    await db.start()
    got: list[str] = []

    async def use(name: str, hold: float) -> None:
        async with db.engine.connect() as conn:
            got.append(name)
            await conn.execute(text("SELECT 1"))
            await asyncio.sleep(hold)

    holder = asyncio.create_task(use("holder", 0.1))
    await asyncio.sleep(0.02)
    doomed = asyncio.create_task(use("doomed", 0))
    second = asyncio.create_task(use("second", 0))
    await asyncio.sleep(0.02)
    assert db.wait_queue.waiting == 2
    doomed.cancel()
    await asyncio.gather(holder, second)
    with pytest.raises(asyncio.CancelledError):
        await doomed
    assert got == ["holder", "second"]
    assert db.wait_queue.waiting == 0
    assert db.engine.pool.checkedout() == 0  # type: ignore[attr-defined]
    await db.stop()


async def test_threads_wait_in_order_on_a_sync_pool(tmp_path: Path) -> None:
    import threading
    import time

    db = Database(
        DatabaseSettings(
            url=f"sqlite:///{tmp_path / 'sync.sqlite'}",
            pool_size=1,
            max_overflow=0,
            max_waiting=5,
            pool_timeout=5,
        )
    )
    await db.start()
    engine = db.sync_engine
    served: list[int] = []

    def use(number: int) -> None:
        with engine.connect() as conn:
            served.append(number)
            conn.execute(text("SELECT 1"))
            time.sleep(0.02)

    held = engine.connect()
    threads = []
    for number in range(4):
        thread = threading.Thread(target=use, args=(number,))
        thread.start()
        threads.append(thread)
        deadline = time.monotonic() + 5
        while db.wait_queue.waiting < number + 1 and time.monotonic() < deadline:  # noqa: ASYNC110 - threads, not tasks
            await asyncio.sleep(0.005)
    assert db.wait_queue.waiting == 4
    held.close()
    for thread in threads:
        thread.join()
    assert served == [0, 1, 2, 3]
    assert db.wait_queue.waiting == 0
    await db.stop()
