"""Recycling: each connection's lifetime is shortened by 0-10 %, and at most a quarter of
the pool is replaced within one second. A fixed clock, no timing; the spread of a real
warmed pool is tests/integration/test_recycle_spread.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import create_engine, event
from sqlalchemy.pool import QueuePool

from pooltender import recycle
from pooltender.recycle import EXPIRES, JITTER, install_recycle, pace


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(recycle.time, "monotonic", clock)
    return clock


def test_pace_is_a_quarter_of_the_pool_at_least_one() -> None:
    assert [pace(n) for n in (0, 1, 3, 4, 5, 20, 21, 100)] == [1, 1, 1, 1, 1, 5, 5, 25]


@pytest.mark.parametrize(("draw", "lifetime"), [(0.0, 3600.0), (0.5, 3420.0), (1.0, 3240.0)])
def test_lifetime_is_shortened_by_at_most_a_tenth(
    tmp_path: Path, clock: Clock, draw: float, lifetime: float
) -> None:
    assert JITTER == 0.1
    engine = create_engine(f"sqlite:///{tmp_path / 'a.db'}", poolclass=QueuePool)
    install_recycle(engine, 3600, 5, draw=lambda: draw)
    with engine.connect() as connection:
        expires = connection.connection.info[EXPIRES]
    assert expires == pytest.approx(clock.now + lifetime)
    engine.dispose()


def test_connections_due_together_are_replaced_a_quarter_of_the_pool_per_second(
    tmp_path: Path, clock: Clock
) -> None:
    engine = create_engine(
        f"sqlite:///{tmp_path / 'a.db'}", poolclass=QueuePool, pool_size=8, max_overflow=0
    )
    install_recycle(engine, 10, 8, draw=lambda: 0.0)
    connects: list[float] = []
    event.listen(engine, "connect", lambda *args: connects.append(clock.now))

    def use_every_connection() -> None:
        held = [engine.connect() for _ in range(8)]
        for connection in held:
            connection.close()

    use_every_connection()  # eight opened at 1000.0, all due at 1010.0
    assert len(connects) == 8
    clock.now = 1009.9
    use_every_connection()
    assert len(connects) == 8  # none due yet
    replaced_per_second = []
    for second in range(5):
        before = len(connects)
        for quarter in range(4):  # every connection checked out twice each quarter second
            clock.now = 1010.0 + second + quarter / 4
            use_every_connection()
            use_every_connection()
        replaced_per_second.append(len(connects) - before)
    # Two per second (a quarter of 8), half a second apart, until all eight are new.
    assert replaced_per_second == [2, 2, 2, 2, 0]
    assert connects[8:] == [1010.0, 1010.5, 1011.0, 1011.5, 1012.0, 1012.5, 1013.0, 1013.5]
    engine.dispose()
