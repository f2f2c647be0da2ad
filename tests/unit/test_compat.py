"""The compatibility seam: every name pooltender needs exists and behaves, and no other
module touches a private name of SQLAlchemy, a driver or asyncio.

When an upgrade moves one of these names, a test here fails by name (and
:func:`pooltender.compat.verify` refuses to start), instead of a request failing later.
"""

from __future__ import annotations

import asyncio
import logging
import re
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import AsyncAdaptedQueuePool, QueuePool

import pooltender
from pooltender import CompatibilityError, DatabaseSettings, build_engine, compat
from pooltender.pool import GatedAsyncQueuePool, GatedQueuePool

PACKAGE = Path(pooltender.__file__).parent


def test_the_pool_hooks_exist_and_pooltender_overrides_them() -> None:
    for hook in compat.POOL_HOOKS:
        assert callable(getattr(QueuePool, hook))
        assert hook in vars(GatedQueuePool.__mro__[1])  # _GatedPool defines each


def test_the_pool_hooks_are_what_a_checkout_and_a_return_call(tmp_path: Path) -> None:
    engine = build_engine(DatabaseSettings(url=f"sqlite:///{tmp_path / 'h.db'}", pool_size=1))
    assert isinstance(engine, Engine)
    calls: list[str] = []
    pool = engine.pool
    for hook in compat.POOL_HOOKS:
        original = getattr(pool, hook)

        def spy(*args: Any, _hook: str = hook, _original: Any = original) -> Any:
            calls.append(_hook)
            return _original(*args)

        setattr(pool, hook, spy)
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        assert calls == ["_do_get", "_do_return_conn"]
    finally:
        engine.dispose()


@pytest.mark.parametrize(
    ("url", "name"),
    [
        ("sqlite:///{tmp}/l.db", "sqlalchemy.pool.impl.QueuePool"),
        ("sqlite+aiosqlite:///{tmp}/l.db", "sqlalchemy.pool.impl.AsyncAdaptedQueuePool"),
    ],
)
def test_pooltender_pools_log_where_sqlalchemy_pools_do(
    tmp_path: Path, url: str, name: str
) -> None:
    engine = build_engine(DatabaseSettings(url=url.format(tmp=tmp_path)))
    pool = engine.sync_engine.pool if not isinstance(engine, Engine) else engine.pool
    assert isinstance(pool, GatedQueuePool | GatedAsyncQueuePool)
    assert pool.logger.name == name
    assert isinstance(pool.logger, logging.Logger | logging.LoggerAdapter)


def test_the_frame_functions_behave() -> None:
    assert compat.getframe(0).f_code is test_the_frame_functions_behave.__code__
    frames = compat.current_frames()
    assert frames[threading.get_ident()].f_code.co_name == "test_the_frame_functions_behave"


async def test_await_runs_a_coroutine_from_sync_code_in_sqlalchemys_greenlet() -> None:
    from sqlalchemy.util import greenlet_spawn

    assert compat.await_ is not None

    def sync_code() -> int:
        assert compat.await_ is not None
        result: int = compat.await_(asyncio.sleep(0.01, result=7))
        return result

    assert await greenlet_spawn(sync_code) == 7


def test_take_idle_takes_an_idle_connection_at_once_or_gives_none(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 't.db'}", poolclass=QueuePool, pool_size=1)
    try:
        pool = engine.pool
        assert isinstance(pool, QueuePool)
        assert compat.take_idle(pool) is None  # nothing opened yet
        engine.connect().close()
        record = compat.take_idle(pool)
        assert record is not None and pool.checkedin() == 0
        assert compat.take_idle(pool) is None
        pool._do_return_conn(record)  # back where it came from
        assert pool.checkedin() == 1
    finally:
        engine.dispose()


async def test_take_idle_does_not_wait_on_the_async_queue(tmp_path: Path) -> None:
    """The async queue's blocking get awaits even for an available connection on
    SQLAlchemy 2.0: take_idle returns it within the same step, no event-loop turn."""
    from sqlalchemy.util import greenlet_spawn

    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 't.db'}", pool_size=1)
    try:
        async with engine.connect():
            pass
        pool = engine.sync_engine.pool
        assert isinstance(pool, AsyncAdaptedQueuePool)
        turns = 0

        async def count_turns() -> None:
            nonlocal turns
            while True:
                await asyncio.sleep(0)
                turns += 1

        counter = asyncio.create_task(count_turns())
        await asyncio.sleep(0)
        before = turns
        record = await greenlet_spawn(compat.take_idle, pool)
        assert record is not None and turns == before
        assert await greenlet_spawn(compat.take_idle, pool) is None
        pool._do_return_conn(record)
        counter.cancel()
    finally:
        await engine.dispose()


def test_the_current_task_of_a_loop_is_readable_from_another_thread() -> None:
    """The watchdog names the route of the task the loop runs, from its own thread,
    with the public ``asyncio.current_task(loop)``."""
    seen: list[object] = []

    async def main() -> object:
        loop = asyncio.get_running_loop()
        probe = threading.Thread(target=lambda: seen.append(asyncio.current_task(loop)))
        probe.start()
        probe.join()  # blocks the loop inside this task, on purpose
        return asyncio.current_task()

    task = asyncio.run(main())
    assert seen == [task]


def test_each_callback_of_the_standard_loop_runs_in_a_new_handle_run_frame() -> None:
    """The watchdog tells one long callback from many short ones by this frame."""
    assert compat.HANDLE_RUN_CODE is not None
    seen: list[object] = []

    def callback() -> None:
        frame = compat.getframe(0)
        while frame is not None and frame.f_code is not compat.HANDLE_RUN_CODE:
            frame = frame.f_back  # type: ignore[assignment]
        seen.append(frame)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        loop.call_soon(callback)
        loop.call_soon(callback)
        await asyncio.sleep(0.01)

    asyncio.run(main())
    first, second = seen
    assert first is not None
    assert second is not None
    assert first is not second


def test_verify_names_a_missing_hook_and_the_installed_version(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class Moved:  # a SQLAlchemy whose pool lost its hook
        pass

    monkeypatch.setattr(compat, "QueuePool", Moved)
    monkeypatch.setattr(compat, "_verified", False)
    with pytest.raises(CompatibilityError) as caught:
        compat.verify()
    message = str(caught.value)
    assert "sqlalchemy.pool.QueuePool._do_get" in message
    assert f"SQLAlchemy {compat.version('sqlalchemy')}" in message
    assert "\n" not in message


def test_verify_names_a_missing_asyncpg_transport() -> None:
    with pytest.raises(CompatibilityError, match=r"asyncpg\.Connection\._transport"):
        compat.verify_asyncpg_connection(object())


def _private_names() -> set[str]:
    """Private attribute names of the SQLAlchemy, driver and asyncio objects pooltender
    meets: engines, pools, dialects, connections, asyncio's task module."""
    import asyncpg
    import psycopg

    engine = create_engine("sqlite://", poolclass=QueuePool)
    async_engine = create_async_engine("sqlite+aiosqlite://", poolclass=AsyncAdaptedQueuePool)
    objects: list[Any] = [
        engine,
        engine.pool,
        engine.dialect,
        async_engine,
        async_engine.sync_engine.pool,
        async_engine.sync_engine.dialect,
        QueuePool,
        asyncpg.Connection,
        psycopg.AsyncConnection,
        asyncio.tasks,
        asyncio.events,
    ]
    names: set[str] = set()
    for obj in objects:
        names.update(dir(obj))
        names.update(getattr(obj, "__dict__", {}))
        names.update(getattr(obj, "__slots__", ()))
    with engine.connect() as connection:
        names.update(dir(connection))
        names.update(dir(connection.connection))
    engine.dispose()
    return {n for n in names if re.fullmatch(r"_[a-z]\w*", n)}


def test_no_module_but_compat_touches_a_private_name() -> None:
    allowed = set(compat.POOL_HOOKS) | {compat.LOGGER_NAMESPACE}
    private = _private_names() - allowed
    offenders = []
    access = re.compile(r"\.(_[a-z]\w*)\b")
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "compat.py":
            continue
        source = path.read_text()
        # A name the module defines itself (self._x = ..., def _x, _x: ...) is its own,
        # even where SQLAlchemy happens to use the same name.
        own = set(re.findall(r"(?:self\.|def |^\s*)(_[a-z]\w*)\s*[:=(]", source, re.M))
        for number, line in enumerate(source.splitlines(), 1):
            code = line.split("#", 1)[0]
            for name in access.findall(code):
                if name in private and name not in own:
                    offenders.append(f"{path.relative_to(PACKAGE)}:{number}: {line.strip()}")
    assert offenders == [], "private names outside pooltender.compat:\n" + "\n".join(offenders)


def test_the_private_name_scan_finds_what_it_looks_for() -> None:
    """The scan above is real: the names pooltender used to reach for are in its set."""
    private = _private_names()
    for name in ("_max_overflow", "_pre_ping", "_dialect", "_dec_overflow", "_current_tasks"):
        assert name in private, name
    assert sys.version_info >= (3, 11)


def test_queue_pool_options_build_what_recreate_builds() -> None:
    """(6) The options read back from a pool build the pool ``recreate()`` would."""
    seen: list[str] = []
    engine = create_engine(
        "sqlite://",
        poolclass=QueuePool,
        pool_size=3,
        max_overflow=2,
        pool_timeout=4,
        pool_recycle=60,
        pool_pre_ping=True,
        pool_use_lifo=True,
    )
    event.listen(engine, "checkout", lambda *args: seen.append("checkout"))
    pool = engine.pool
    assert isinstance(pool, QueuePool)
    options = compat.queue_pool_options(pool)
    built, recreated = QueuePool(**options), pool.recreate()
    for other in (built, recreated):
        assert (other.size(), other.timeout()) == (3, 4)
        assert other.status() == recreated.status()
    assert (options["max_overflow"], options["recycle"], options["pre_ping"]) == (2, 60, True)
    assert options["use_lifo"] is True and options["dialect"] is not None
    engine.pool = built  # the app's listeners came along
    with engine.connect() as connection:
        assert connection.scalar(text("SELECT 1")) == 1
    assert seen == ["checkout"]
    engine.dispose()


def test_queue_pool_options_name_a_missing_attribute() -> None:
    pool = QueuePool(lambda: None)
    del pool._max_overflow
    with pytest.raises(CompatibilityError, match=r"QueuePool\._max_overflow"):
        compat.queue_pool_options(pool)


def test_the_asyncpg_adapter_has_the_begin_the_pre_ping_sends() -> None:
    from sqlalchemy.dialects.postgresql.asyncpg import AsyncAdapt_asyncpg_connection

    assert asyncio.iscoroutinefunction(getattr(AsyncAdapt_asyncpg_connection, compat.ASYNCPG_BEGIN))
