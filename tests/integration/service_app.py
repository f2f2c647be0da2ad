"""A service written like the README's smallest example, with three pool mistakes.

Used by the end-to-end test: ``/leak`` opens ``engine.connect()`` and never closes it,
``/sleep`` blocks the event loop while holding a session, ``/stream`` streams for
1.5 s while the request's session is still held.
"""

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, FastAPI, Request
from fastapi.responses import StreamingResponse
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from pooltender.fastapi import Session, databases, install

logging.basicConfig(level=logging.INFO)
app = FastAPI()
install(app)

leaked: list[AsyncConnection] = []


@app.get("/users/{user_id}")
async def get_user(user_id: int, session: Session) -> dict[str, int]:
    value = (await session.execute(text("SELECT CAST(:v AS INTEGER)"), {"v": user_id})).scalar_one()
    return {"id": value}


@app.get("/leak")
async def leak(request: Request) -> dict[str, str]:
    connection = await databases(request.app).primary.engine.connect()  # LEAK-SITE
    leaked.append(connection)
    return {"status": "leaked"}


@app.get("/sleep")
async def sleep(session: Session) -> dict[str, str]:
    await session.execute(text("SELECT 1"))  # SLEEP-CHECKOUT
    time.sleep(0.6)  # noqa: ASYNC251 SLEEP-SITE
    return {"status": "slept"}


async def request_session(request: Request) -> AsyncIterator[AsyncSession]:
    async with databases(request.app).primary.session() as session:
        yield session


@app.get("/stream")
async def stream(session: Annotated[AsyncSession, Depends(request_session)]) -> StreamingResponse:
    await session.execute(text("SELECT 1"))  # STREAM-SITE

    async def body() -> AsyncIterator[bytes]:
        for _ in range(3):
            yield b"chunk\n"
            await asyncio.sleep(0.5)

    return StreamingResponse(body(), media_type="text/plain")
