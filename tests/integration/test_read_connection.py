"""``Database.read_connection()``: no BEGIN/COMMIT, each statement its own transaction."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text

from pooltender import Database, DatabaseSettings
from pooltender.testing.plugin import DEFAULT_POSTGRES_URL, URL_VARIABLE

pytestmark = pytest.mark.integration

URL = os.environ.get(URL_VARIABLE, DEFAULT_POSTGRES_URL)
XID = text("SELECT pg_current_xact_id()::text")


@pytest.fixture
async def database() -> AsyncIterator[Database]:
    db = Database(DatabaseSettings(url=URL, warmup=0))
    await db.start()
    yield db
    await db.stop()


async def test_each_statement_of_a_read_connection_is_its_own_transaction(
    database: Database,
) -> None:
    async with database.read_connection() as connection:
        first = await connection.scalar(XID)
        second = await connection.scalar(XID)
    assert first != second


async def test_a_connection_runs_its_statements_in_one_transaction(database: Database) -> None:
    async with database.connection() as connection:
        first = await connection.scalar(XID)
        second = await connection.scalar(XID)
    assert first == second


async def test_the_read_connection_goes_back_to_the_pool_in_transaction_mode(
    database: Database,
) -> None:
    async with database.read_connection() as connection:
        await connection.scalar(text("SELECT 1"))
    async with database.connection() as connection:  # the same pooled connection again
        assert (await connection.scalar(XID)) == (await connection.scalar(XID))
