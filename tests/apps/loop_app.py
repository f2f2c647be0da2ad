"""A service whose routes block the event loop, or keep it busy without blocking it."""

from __future__ import annotations

import asyncio
import time

from fastapi import FastAPI
from sqlalchemy import text

from pooltender.fastapi import Session, install

app = FastAPI()
install(app)


@app.get("/sleep")
async def sleep(session: Session, seconds: float = 0.4) -> dict[str, float]:
    await session.execute(text("SELECT 1"))
    time.sleep(seconds)  # noqa: ASYNC251 - BLOCKING-LINE: a blocking call in an async route
    return {"slept": seconds}


async def _spin(rounds: int) -> int:
    total = 0
    for i in range(rounds):
        total += sum(range(50))
        await asyncio.sleep(0)  # a short await: the loop runs other callbacks
        total -= i
    return total


@app.get("/busy")
async def busy(session: Session, tasks: int = 5000, rounds: int = 20) -> dict[str, int]:
    """Thousands of short callbacks per loop iteration: late heartbeats, no blocking."""
    await session.execute(text("SELECT 1"))
    results = await asyncio.gather(*(_spin(rounds) for _ in range(tasks)))
    return {"sum": sum(results) + int(await session.scalar(text("SELECT 1")) or 0)}
