"""A read-only database: the session refuses to flush writes, the server refuses SQL writes."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest
from sqlalchemy import Integer, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from pooltender import Databases, ReadOnlyError, load_database_settings
from tests.support.pg import PG_URL

pytestmark = pytest.mark.integration

TABLE = f"t5_read_only_{uuid.uuid4().hex[:8]}"


class Base(DeclarativeBase):
    pass


class Row(Base):
    __tablename__ = TABLE
    id: Mapped[int] = mapped_column(Integer, primary_key=True)


@pytest.fixture
def table(admin: psycopg.Connection) -> Iterator[str]:
    admin.execute(f"CREATE TABLE {TABLE} (id int PRIMARY KEY)")
    admin.execute(f"INSERT INTO {TABLE} VALUES (1)")
    yield TABLE
    admin.execute(f"DROP TABLE {TABLE}")


@pytest.mark.parametrize("driver", ["asyncpg", "psycopg"])
async def test_read_only_database_refuses_writes(driver: str, table: str) -> None:
    url = PG_URL.replace("+asyncpg", f"+{driver}")
    settings = load_database_settings(
        {"DATABASE_URL": url, "DATABASE_REPLICA_URL": url, "DATABASE_REPLICA_READ_ONLY": "true"},
        env_file=None,
    )
    dbs = Databases.from_settings(settings)
    await dbs.start()
    try:
        replica = dbs["replica"]
        async with replica.session() as session:  # reads work
            assert (await session.execute(text(f"SELECT count(*) FROM {table}"))).scalar() == 1
            read_only = (await session.execute(text("SHOW transaction_read_only"))).scalar()
            assert read_only == "on"

        with pytest.raises(ReadOnlyError, match="DATABASE_REPLICA_READ_ONLY"):
            async with replica.session() as session:
                session.add(Row(id=2))

        with pytest.raises(DBAPIError, match="read-only transaction"):
            async with replica.session() as session:
                await session.execute(text(f"INSERT INTO {table} VALUES (3)"))

        async with dbs.primary.session() as session:  # the primary still writes
            session.add(Row(id=4))
        async with replica.session() as session:
            ids = (await session.execute(text(f"SELECT id FROM {table} ORDER BY id"))).scalars()
            assert list(ids) == [1, 4]
    finally:
        await dbs.stop()


MARIADB_URL = "mysql+aiomysql://root@127.0.0.1:3306/test"


async def test_read_only_mariadb_refuses_sql_writes() -> None:
    table = f"t5_ro_{uuid.uuid4().hex[:8]}"
    settings = load_database_settings(
        {
            "DATABASE_URL": MARIADB_URL,
            "DATABASE_REPLICA_URL": MARIADB_URL,
            "DATABASE_REPLICA_READ_ONLY": "true",
        },
        env_file=None,
    )
    dbs = Databases.from_settings(settings)
    await dbs.start()
    try:
        async with dbs.primary.session() as session:
            await session.execute(text(f"CREATE TABLE {table} (id int PRIMARY KEY)"))
        with pytest.raises(DBAPIError, match="READ ONLY"):
            async with dbs["replica"].session() as session:
                await session.execute(text(f"INSERT INTO {table} VALUES (1)"))
        async with dbs.primary.session() as session:
            await session.execute(text(f"INSERT INTO {table} VALUES (2)"))
            count = (await session.execute(text(f"SELECT count(*) FROM {table}"))).scalar()
            assert count == 1
    finally:
        async with dbs.primary.session() as session:
            await session.execute(text(f"DROP TABLE IF EXISTS {table}"))
        await dbs.stop()
