"""On a writable primary, a transaction the application made read-only is no failover:
its write fails as SQLAlchemy raises it (SQLSTATE 25006), nothing is counted, the pool
keeps its connections (the server's ParameterStatus says it is writable)."""

from __future__ import annotations

import pytest
from sqlalchemy import exc, text
from sqlalchemy.engine import make_url

from pooltender import Database, DatabaseSettings, FailoverDetected
from tests.support.pg import PG_URL

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("driver", ["asyncpg", "psycopg"])
async def test_an_application_read_only_transaction_is_not_a_failover(driver: str) -> None:
    url = make_url(PG_URL).set(drivername=f"postgresql+{driver}")
    db = Database(DatabaseSettings(url=url, pool_size=2))
    await db.start()
    try:
        for _ in range(3):
            with pytest.raises(exc.DBAPIError) as raised:
                async with db.session() as session:
                    await session.execute(text("SET TRANSACTION READ ONLY"))
                    await session.execute(text("CREATE TABLE pooltender_never (i int)"))
            assert not isinstance(raised.value, FailoverDetected)
            assert "read-only transaction" in str(raised.value)
            async with db.session() as session:  # the pool serves writes as before
                assert (await session.execute(text("SELECT 1"))).scalar() == 1
        stats = db.stats()
        assert stats.failovers == 0 and db.failover.generation == 0
        assert stats.connections_invalidated == 0
    finally:
        await db.stop()
