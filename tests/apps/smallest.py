"""The README's smallest example, plus routes the tests drive."""

from __future__ import annotations

import asyncio

from fastapi import FastAPI
from sqlalchemy import text

from pooltender.fastapi import Session, install

app = FastAPI()
install(app)


@app.get("/hold")
async def hold(session: Session, seconds: float = 1.0) -> dict[str, float]:
    await session.execute(text("SELECT 1"))
    await asyncio.sleep(seconds)
    return {"held": seconds}
