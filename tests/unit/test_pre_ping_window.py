"""DATABASE_PRE_PING_WINDOW: pre-ping tests only connections idle longer than the window."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text

from pooltender import DatabaseSettings, build_engine


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    settings = DatabaseSettings(
        url=f"sqlite:///{tmp_path / 'ping.sqlite'}", pool_size=1, pre_ping_window=60
    )
    built = build_engine(settings)
    assert isinstance(built, Engine)
    yield built
    built.dispose()


def count_pings(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    pings: list[Any] = []
    original = engine.dialect.do_ping

    def do_ping(dbapi_connection: Any) -> bool:
        pings.append(dbapi_connection)
        return original(dbapi_connection)

    monkeypatch.setattr(engine.dialect, "do_ping", do_ping)
    return pings


def use(engine: Engine) -> None:
    with engine.connect() as connection:
        connection.execute(text("SELECT 1"))


def test_a_connection_returned_a_moment_ago_is_not_pinged(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    pings = count_pings(engine, monkeypatch)
    for _ in range(3):
        use(engine)
    assert pings == []


def test_a_connection_idle_past_the_window_is_pinged(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    short = build_engine(DatabaseSettings(url=str(engine.url), pool_size=1, pre_ping_window=0.05))
    assert isinstance(short, Engine)
    try:
        pings = count_pings(short, monkeypatch)
        use(short)
        use(short)  # returned a moment ago: inside the window
        assert pings == []
        time.sleep(0.1)  # idle past the window
        use(short)
        assert len(pings) == 1
    finally:
        short.dispose()


@pytest.mark.parametrize("failure", ["false", "raises"])
def test_a_connection_failing_its_ping_is_replaced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failure: str
) -> None:
    engine = build_engine(DatabaseSettings(url=f"sqlite:///{tmp_path / 'f.sqlite'}", pool_size=1))
    assert isinstance(engine, Engine)
    try:
        use(engine)
        with engine.connect() as connection:
            first = connection.connection.dbapi_connection

        def failing_ping(dbapi_connection: Any) -> bool:
            if failure == "raises":
                raise OSError("connection reset by peer")
            return False

        monkeypatch.setattr(engine.dialect, "do_ping", failing_ping)
        with engine.connect() as connection:
            assert connection.connection.dbapi_connection is not first
            assert connection.execute(text("SELECT 1")).scalar() == 1
    finally:
        engine.dispose()


def test_pre_ping_off_never_pings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = DatabaseSettings(
        url=f"sqlite:///{tmp_path / 'x.sqlite'}", pool_pre_ping=False, pre_ping_window=0.05
    )
    engine = build_engine(settings)
    assert isinstance(engine, Engine)
    try:
        pings = count_pings(engine, monkeypatch)
        use(engine)
        time.sleep(0.1)
        use(engine)
        assert pings == []
    finally:
        engine.dispose()


def test_without_a_window_every_checkout_is_pinged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = DatabaseSettings(
        url=f"sqlite:///{tmp_path / 'every.sqlite'}", pool_size=1, pre_ping_window=0
    )
    engine = build_engine(settings)
    assert isinstance(engine, Engine)
    try:
        pings = count_pings(engine, monkeypatch)
        for _ in range(3):
            use(engine)
        assert len(pings) == 2  # the first checkout opens a new connection
    finally:
        engine.dispose()


def test_looks_alive_vouches_only_for_what_it_can_check() -> None:
    import sqlite3

    from pooltender.ping import looks_alive

    class SomeDriverConnection:  # a driver whose socket pooltender does not know
        pass

    connection = sqlite3.connect(":memory:")
    try:
        assert looks_alive(connection)  # no server to lose
    finally:
        connection.close()
    assert not looks_alive(SomeDriverConnection())  # so the window pings it anyway
