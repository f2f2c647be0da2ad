"""The ledger (``tests/support/ledger_app.py``) as an app that builds its own engine.

Its own ``create_async_engine`` from ``LEDGER_URL`` (a multi-host URL asking for the
writable host itself: pooltender leaves an adopted engine's URL alone), its own
``async_sessionmaker`` and use cases that commit in ``maker.begin()``; pooltender adopts
the engine: ``install(app, engines={"primary": engine})``.
"""

from __future__ import annotations

import os
import uuid

from fastapi import FastAPI
from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

from pooltender.fastapi import install

LEDGER = os.environ.get("LEDGER_TABLE", "ledger")

engine = create_async_engine(
    os.environ["LEDGER_URL"],
    pool_size=4,
    max_overflow=10,
    pool_timeout=2,
    pool_recycle=3600,
    pool_pre_ping=True,
    connect_args={"timeout": 2},
)
maker = async_sessionmaker(engine, expire_on_commit=False)

app = FastAPI()
install(app, engines={"primary": engine})


class Entry(BaseModel):
    id: uuid.UUID


@app.post("/ledger")
async def write(entry: Entry) -> dict[str, str]:
    """Record ``entry`` once; committed before the answer is sent."""
    async with maker.begin() as session:
        await session.execute(text(f"INSERT INTO {LEDGER} (id) VALUES (:id)"), {"id": entry.id})
    return {"id": str(entry.id)}


@app.get("/ledger/{entry_id}")
async def read(entry_id: uuid.UUID) -> dict[str, int]:
    """How many rows the ledger holds for ``entry_id``."""
    async with maker() as session:
        rows = await session.execute(
            text(f"SELECT count(*) FROM {LEDGER} WHERE id = :id"), {"id": entry_id}
        )
        return {"rows": rows.scalar_one()}
