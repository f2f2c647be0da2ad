"""One real MariaDB: the async driver, the session contract, the statement timeout."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from pooltender import Database, DatabaseSettings, StatementTimeout


async def test_mariadb_session_contract_and_statement_timeout(mariadb_url: str) -> None:
    db = Database(DatabaseSettings(url=mariadb_url, pool_size=2, statement_timeout=3))
    await db.start()
    try:
        async with db.session() as session:
            await session.execute(text("DROP TABLE IF EXISTS t2_maria"))
            await session.execute(text("CREATE TABLE t2_maria (x INT)"))
        with pytest.raises(RuntimeError):
            async with db.session() as session:
                await session.execute(text("INSERT INTO t2_maria VALUES (1)"))
                raise RuntimeError("roll it back")
        async with db.session() as session:
            await session.execute(text("INSERT INTO t2_maria VALUES (2)"))
        async with db.session() as session:
            assert (await session.scalars(text("SELECT x FROM t2_maria"))).all() == [2]
            assert float(await session.scalar(text("SELECT @@max_statement_time"))) == 3.0
            await session.execute(text("DROP TABLE t2_maria"))
        assert db.engine.pool.checkedin() == 2  # type: ignore[attr-defined]
    finally:
        await db.stop()


async def test_mariadb_statement_timeout_is_a_503_error(mariadb_url: str) -> None:
    db = Database(DatabaseSettings(url=mariadb_url, pool_size=1, statement_timeout=0.3))
    await db.start()
    try:
        with pytest.raises(StatementTimeout, match="max_statement_time"):
            async with db.session() as session:
                await session.execute(text("SELECT SLEEP(2)"))
        async with db.session() as session:  # the connection is still good
            assert await session.scalar(text("SELECT 1")) == 1
    finally:
        await db.stop()
