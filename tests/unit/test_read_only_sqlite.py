"""A read-only SQLite database refuses ORM and SQL writes (no server needed)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Integer, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from pooltender import Database, DatabaseSettings, ReadOnlyError


class Base(DeclarativeBase):
    pass


class Item(Base):
    __tablename__ = "items"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)


async def test_read_only_sqlite(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'app.db'}"
    writer = Database(DatabaseSettings(url=url))
    await writer.start()
    async with writer.session() as session:
        await session.execute(text("CREATE TABLE items (id integer PRIMARY KEY)"))
        session.add(Item(id=1))
    await writer.stop()

    reader = Database(DatabaseSettings(name="replica", url=url, read_only=True))
    await reader.start()
    try:
        async with reader.session() as session:
            assert (await session.execute(text("SELECT count(*) FROM items"))).scalar() == 1
        with pytest.raises(ReadOnlyError, match=r"'replica' is read-only \(DATABASE_REPLICA_"):
            async with reader.session() as session:
                session.add(Item(id=2))
        with pytest.raises(OperationalError, match="readonly"):
            async with reader.session() as session:
                await session.execute(text("INSERT INTO items VALUES (3)"))
    finally:
        await reader.stop()
