from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from pooltender import Database, DatabaseSettings, PooltenderSettings

MakeDb = Callable[..., Awaitable[Database]]


@pytest.fixture
async def make_db(tmp_path: Path) -> AsyncIterator[MakeDb]:
    """Build started aiosqlite databases; every one is stopped after the test."""
    started: list[Database] = []

    async def make(
        *, leak_threshold: float = 30.0, loop_block_threshold: float = 0.0, **settings: Any
    ) -> Database:
        url = settings.pop("url", f"sqlite+aiosqlite:///{tmp_path}/t3.db")
        db = Database(
            DatabaseSettings(url=url, leak_threshold=leak_threshold, **settings),
            pooltender_settings=PooltenderSettings(loop_block_threshold=loop_block_threshold),
        )
        await db.start()
        started.append(db)
        return db

    yield make
    for db in started:
        await db.stop()


@pytest.fixture
def monitor_log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO, logger="pooltender")
    return caplog


async def wait_for_log(
    caplog: pytest.LogCaptureFixture, text: str, *, level: int, timeout: float = 5.0
) -> list[logging.LogRecord]:
    """The records at ``level`` containing ``text``, once there is one (or fail)."""
    deadline = time.monotonic() + timeout
    while True:
        found = [r for r in caplog.records if r.levelno == level and text in r.getMessage()]
        if found or time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.02)
