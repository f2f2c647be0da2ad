"""The service the fault tests run: the README's smallest example plus a few routes.

``app = FastAPI(); install(app)``; every route takes the primary ``Session``. The
table names come from ``T5_ACCOUNTS`` / ``T5_TRANSFERS`` so concurrent runs do not meet.
"""

from __future__ import annotations

import os
import uuid
from typing import Annotated

from fastapi import FastAPI, HTTPException, Path, Query, Request
from pydantic import BaseModel, Field
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from pooltender.fastapi import Session, databases, install

app = FastAPI()
install(app)

ACCOUNTS = os.environ.get("T5_ACCOUNTS", "t5_accounts")
TRANSFERS = os.environ.get("T5_TRANSFERS", "t5_transfers")


@app.get("/users/{user_id}")
async def get_user(
    user_id: Annotated[int, Path(ge=-(2**31), le=2**31 - 1)], session: Session
) -> dict[str, int]:
    """A short query: what most requests of a service look like."""
    value = (
        await session.execute(text("SELECT CAST(:id AS integer)"), {"id": user_id})
    ).scalar_one()
    return {"id": value}


@app.get("/sleep")
async def sleep(seconds: Annotated[float, Query(ge=0, le=1)], session: Session) -> dict[str, float]:
    """Hold a connection for ``seconds`` on the server."""
    await session.execute(text("SELECT pg_sleep(CAST(:s AS float))"), {"s": seconds})
    return {"slept": seconds}


AccountId = Annotated[int, Field(ge=1, le=2**31 - 1)]


class Transfer(BaseModel):
    id: uuid.UUID
    source: AccountId
    target: AccountId
    amount: Annotated[int, Field(ge=1, le=1_000_000)]


@app.post("/transfers")
async def transfer(body: Transfer, session: Session) -> dict[str, str]:
    """Move money between two accounts in one transaction, recorded once by its id."""
    try:
        await session.execute(
            text(f"INSERT INTO {TRANSFERS} (id, source, target, amount) VALUES (:id, :s, :t, :a)"),
            {"id": body.id, "s": body.source, "t": body.target, "a": body.amount},
        )
    except IntegrityError:
        raise HTTPException(409, f"transfer {body.id} was already made") from None
    await session.execute(
        text(f"UPDATE {ACCOUNTS} SET balance = balance - :a WHERE id = :s"),
        {"a": body.amount, "s": body.source},
    )
    await session.execute(
        text(f"UPDATE {ACCOUNTS} SET balance = balance + :a WHERE id = :t"),
        {"a": body.amount, "t": body.target},
    )
    return {"id": str(body.id)}


@app.get("/backend")
async def backend(session: Session) -> dict[str, int]:
    """This worker's pid and the server backend serving the request."""
    pid = (await session.execute(text("SELECT pg_backend_pid()"))).scalar_one()
    return {"worker": os.getpid(), "backend": pid}


@app.get("/_pool")
async def pool(request: Request) -> dict[str, int]:
    """The primary pool's counts, read from SQLAlchemy's pool itself."""
    database = databases(request.app).primary
    sa_pool = database.engine.sync_engine.pool
    return {
        "checked_out": sa_pool.checkedout(),  # type: ignore[attr-defined]
        "size": sa_pool.size(),  # type: ignore[attr-defined]
        "overflow": sa_pool.overflow(),  # type: ignore[attr-defined]
        "waiting": database.wait_queue.waiting,
    }
