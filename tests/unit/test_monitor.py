from __future__ import annotations

import asyncio
import gc
import logging
import os
import queue
import sys
import threading
import time

import pytest
from sqlalchemy import text

from pooltender import Database, DatabaseSettings, PoolOverloaded, PooltenderSettings, readiness
from pooltender.monitor import RequestContext, current_request
from pooltender.readiness import BUSY_GRACE

from .conftest import MakeDb, wait_for_log

HERE = os.path.relpath(__file__)


def next_line() -> int:
    """The line after the caller's: where the statement under test is."""
    return sys._getframe(1).f_lineno + 1


def request(method: str, template: str) -> RequestContext:
    return RequestContext(method, lambda: template)


async def test_counters_and_durations(make_db: MakeDb) -> None:
    db = await make_db(pool_size=2)
    before = db.stats()
    for _ in range(3):
        async with db.session() as session:
            await session.execute(text("SELECT 1"))
    stats = db.stats()
    assert stats.checkouts == before.checkouts + 3
    assert stats.connections_created == 2  # warm-up opened pool_size connections
    assert stats.connect_time.count == 2
    assert stats.wait_time.count == stats.checkouts
    assert stats.use_time.count == stats.checkouts
    assert 0 < stats.use_time.p50 <= stats.use_time.max
    assert (stats.checked_out, stats.held) == (0, ())
    assert stats.total == stats.available == 2


async def test_held_table_names_route_and_exact_checkout_site(make_db: MakeDb) -> None:
    db = await make_db()
    token = current_request.set(request("GET", "/users/{user_id}"))
    try:
        line = next_line()
        connection = await db.engine.connect()
    finally:
        current_request.reset(token)
    try:
        [held] = db.stats().held
        assert held.route == "GET /users/{user_id}"
        function = "test_held_table_names_route_and_exact_checkout_site"
        assert held.site == f"{HERE}:{line} in {function}"
        assert held.leak is False
        assert held.age >= 0
        assert db.stats().checked_out == 1
    finally:
        await connection.close()
    routes = {r.route: r for r in db.stats().routes}
    assert routes["GET /users/{user_id}"].hold.count == 1
    assert db.stats().held == ()


async def test_session_checkout_site_is_the_users_execute(make_db: MakeDb) -> None:
    db = await make_db()
    async with db.session() as session:
        line = next_line()
        await session.execute(text("SELECT 1"))
        [held] = db.stats().held
    assert held.site.startswith(f"{HERE}:{line} in ")
    assert held.route == "(no request)"


async def test_listeners_survive_dispose(make_db: MakeDb) -> None:
    db = await make_db()
    before = db.stats().checkouts
    await db.engine.dispose()
    async with db.engine.connect() as connection:
        await connection.execute(text("SELECT 1"))
    assert db.stats().checkouts == before + 1


async def test_routes_beyond_the_limit_share_one_row(make_db: MakeDb) -> None:
    db = await make_db()
    db.monitor.max_routes = 3
    for i in range(10):
        token = current_request.set(request("GET", f"/r{i}"))
        try:
            async with db.engine.connect():
                pass
        finally:
            current_request.reset(token)
    routes = {r.route: r.hold.count for r in db.stats().routes}
    assert len(routes) == 3 + 1  # three named routes, then one row for the rest
    assert sum(routes.values()) == db.stats().checkouts
    assert routes["(other routes)"] == 8


async def test_sync_engine_in_threads(tmp_path: object, make_db: MakeDb) -> None:
    db = await make_db(url=f"sqlite:///{tmp_path}/t3sync.db")
    lines: list[int] = []

    def work() -> None:
        with db.sync_session() as session:
            lines.append(next_line())
            session.execute(text("SELECT 1"))
            assert db.stats().held[0].site.startswith(f"{HERE}:{lines[-1]} in work")

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(lines) == 4
    stats = db.stats()
    assert stats.use_time.count >= 4
    assert stats.checked_out == 0


async def test_leak_is_warned_once_then_its_return_is_logged(
    make_db: MakeDb, monitor_log: pytest.LogCaptureFixture
) -> None:
    db = await make_db(leak_threshold=0.2)
    token = current_request.set(request("POST", "/orders"))
    try:
        line = next_line()
        connection = await db.engine.connect()
    finally:
        current_request.reset(token)
    site = f"{HERE}:{line} in test_leak_is_warned_once_then_its_return_is_logged"
    warnings = await wait_for_log(monitor_log, "suspected leak", level=logging.WARNING)
    assert warnings, "no leak warning"
    message = warnings[0].getMessage()
    assert "'primary'" in message
    assert "POST /orders" in message
    assert site in message
    assert "connection = await db.engine.connect()" in message  # the stack, with source
    assert warnings[0].pooltender["route"] == "POST /orders"  # type: ignore[attr-defined]
    await asyncio.sleep(0.6)  # several scans later
    again = [r for r in monitor_log.records if "suspected leak;" in r.getMessage()]
    assert len(again) == 1
    assert db.stats().leaks_suspected == 1
    assert db.stats().held[0].leak is True
    await connection.close()
    infos = await wait_for_log(monitor_log, "was returned after", level=logging.INFO)
    assert infos
    assert site in infos[0].getMessage()


def open_and_drop(db: Database) -> int:
    line = next_line()
    connection = db.sync_engine.connect()
    del connection
    return line


async def test_connection_reclaimed_by_gc_is_reported_with_its_site(
    tmp_path: object, make_db: MakeDb, monitor_log: pytest.LogCaptureFixture
) -> None:
    db = await make_db(url=f"sqlite:///{tmp_path}/t3gc.db")
    line = open_and_drop(db)
    gc.collect()
    records = await wait_for_log(monitor_log, "garbage collector reclaimed", level=logging.WARNING)
    assert records
    assert f"{HERE}:{line} in open_and_drop" in records[0].getMessage()
    assert db.stats().connections_reclaimed == 1
    assert db.stats().held == ()


def block_the_loop() -> int:
    line = next_line()
    time.sleep(0.5)
    return line


async def test_watchdog_names_the_blocking_frame_and_route(
    make_db: MakeDb, monitor_log: pytest.LogCaptureFixture
) -> None:
    db = await make_db(loop_block_threshold=0.05)
    context = request("GET", "/slow")
    token = current_request.set(context)
    try:
        async with db.engine.connect():
            line = block_the_loop()
            await asyncio.sleep(0.1)  # let the watchdog see the loop beat again
    finally:
        current_request.reset(token)
    records = await wait_for_log(monitor_log, "event loop blocked", level=logging.WARNING)
    assert records
    message = records[0].getMessage()
    assert f"{HERE}:{line} in block_the_loop" in message
    stats = db.stats()
    assert stats.loop_blocked.count == 1
    assert stats.loop_blocked.max > 0.05


async def test_watchdog_is_quiet_when_no_connection_is_held(
    make_db: MakeDb, monitor_log: pytest.LogCaptureFixture
) -> None:
    db = await make_db(loop_block_threshold=0.05)
    block_the_loop()
    await asyncio.sleep(0.2)
    assert not [r for r in monitor_log.records if "event loop blocked" in r.getMessage()]
    assert db.stats().loop_blocked.count == 0


async def test_ready_reports_an_exhausted_pool_as_busy_without_waiting(make_db: MakeDb) -> None:
    db = await make_db(pool_size=1, max_overflow=0, pool_timeout=30)
    assert await readiness(db) == "ok"
    async with db.engine.connect():
        assert await asyncio.wait_for(readiness(db), 1.0) == "busy"
        db.monitor.last_checkout -= BUSY_GRACE + 1  # no checkout succeeded for a while
        with pytest.raises(PoolOverloaded, match="none was checked out"):
            await asyncio.wait_for(readiness(db), 1.0)


async def test_monitor_can_be_turned_off(tmp_path: object) -> None:
    db = Database(
        DatabaseSettings(url=f"sqlite+aiosqlite:///{tmp_path}/t3off.db"),
        pooltender_settings=PooltenderSettings(monitor=False),
    )
    await db.start()
    try:
        async with db.engine.connect():
            assert db.stats().held == ()
        assert db.stats().checkouts == 0
        assert db.stats().checked_out == 0  # pool figures still come from the pool
    finally:
        await db.stop()


async def test_health_log_writes_one_line_per_database(
    tmp_path: object, monitor_log: pytest.LogCaptureFixture
) -> None:
    db = Database(
        DatabaseSettings(url=f"sqlite+aiosqlite:///{tmp_path}/t3health.db"),
        pooltender_settings=PooltenderSettings(health_log_interval=0.05, loop_block_threshold=0),
    )
    await db.start()
    try:
        records = await wait_for_log(monitor_log, "pool database=primary", level=logging.INFO)
    finally:
        await db.stop()
    assert records
    assert records[0].name == "pooltender.health"
    assert "checked_out=0" in records[0].getMessage()


async def test_watchdog_finds_the_route_behind_a_greenlet_blocked_in_library_code(
    make_db: MakeDb, monitor_log: pytest.LogCaptureFixture
) -> None:
    # run_sync runs its function in a greenlet of the loop's thread; the blocking frames
    # there are all the standard library's (queue.Queue.get waiting 0.3s, then Empty).
    # The user's frame is in the parent greenlet, which the watchdog thread must find
    # without asking greenlet.getcurrent() (that answers for the watchdog's own thread).
    db = await make_db(loop_block_threshold=0.05)
    token = current_request.set(request("GET", "/sync-work"))
    try:
        async with db.session() as session:
            await session.execute(text("SELECT 1"))
            with pytest.raises(queue.Empty):
                line = next_line()
                await session.run_sync(queue.Queue().get, 0.3)  # get(block, timeout)
            await asyncio.sleep(0.1)
    finally:
        current_request.reset(token)
    records = await wait_for_log(monitor_log, "event loop blocked", level=logging.WARNING)
    assert records
    message = records[0].getMessage()
    assert "in GET /sync-work at " in message
    assert f" at {HERE}:{line} in test_watchdog_finds_the_route_behind" in message


async def test_watchdog_names_the_route_of_a_request_that_holds_no_connection_itself(
    make_db: MakeDb, monitor_log: pytest.LogCaptureFixture
) -> None:
    # The connection is held by another task (a background task, another request); the
    # task that blocks the loop serves GET /report: its request names the route.
    db = await make_db(loop_block_threshold=0.05)
    held = asyncio.Event()
    release = asyncio.Event()

    async def holder() -> None:
        async with db.engine.connect():
            held.set()
            await release.wait()

    other = asyncio.create_task(holder())
    await held.wait()
    token = current_request.set(request("GET", "/report"))
    try:
        line = block_the_loop()
        await asyncio.sleep(0.1)
    finally:
        current_request.reset(token)
        release.set()
        await other
    records = await wait_for_log(monitor_log, "event loop blocked", level=logging.WARNING)
    assert records
    message = records[0].getMessage()
    assert f"in GET /report at {HERE}:{line} in block_the_loop" in message


async def test_watchdog_does_not_blame_a_loop_busy_with_short_callbacks(
    make_db: MakeDb, monitor_log: pytest.LogCaptureFixture
) -> None:
    # Heartbeats late by far more than the threshold (thousands of short callbacks per
    # loop iteration), while a connection is held: no callback ran long, nothing blocked.
    db = await make_db(loop_block_threshold=0.05)

    async def spin() -> None:
        for _ in range(20):
            sum(range(200))
            await asyncio.sleep(0)

    async with db.engine.connect():
        started = time.monotonic()
        await asyncio.gather(*(spin() for _ in range(4000)))
        elapsed = time.monotonic() - started
        await asyncio.sleep(0.1)
    print(f"{elapsed:.2f}s of short callbacks")
    assert not [r for r in monitor_log.records if "event loop blocked" in r.getMessage()]
