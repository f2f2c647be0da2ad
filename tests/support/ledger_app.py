"""A service with one write and one read, for failover measurements: a ledger.

``app = FastAPI(); install(app)``, as the README's smallest example. Each write inserts
one row under the id its client chose; the table (``LEDGER_TABLE``) has no unique key on
the id, so a write applied twice shows as two rows instead of being refused.
"""

from __future__ import annotations

import os
import uuid

from fastapi import FastAPI
from pydantic import BaseModel
from sqlalchemy import text

from pooltender.fastapi import Session, install

app = FastAPI()
install(app)

LEDGER = os.environ.get("LEDGER_TABLE", "ledger")


class Entry(BaseModel):
    id: uuid.UUID


@app.post("/ledger")
async def write(entry: Entry, session: Session) -> dict[str, str]:
    """Record ``entry`` once; the transaction commits before the answer is sent."""
    await session.execute(text(f"INSERT INTO {LEDGER} (id) VALUES (:id)"), {"id": entry.id})
    return {"id": str(entry.id)}


@app.get("/ledger/{entry_id}")
async def read(entry_id: uuid.UUID, session: Session) -> dict[str, int]:
    """How many rows the ledger holds for ``entry_id``."""
    rows = await session.execute(
        text(f"SELECT count(*) FROM {LEDGER} WHERE id = :id"), {"id": entry_id}
    )
    return {"rows": rows.scalar_one()}
