"""Health routes: liveness without I/O, readiness that checks every database at once."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from ..readiness import readiness
from .dependencies import databases

__all__ = ["health_router"]

READY_TIMEOUT = 2.0


def health_router() -> APIRouter:
    router = APIRouter(tags=["pooltender"])

    @router.get("/live")
    async def live() -> dict[str, str]:
        """The process is up. No database I/O."""
        return {"status": "ok"}

    @router.get("/ready")
    async def ready(request: Request) -> JSONResponse:
        """Every database, concurrently: ``SELECT 1`` within a short timeout, or ``busy``.

        A ping never queues behind requests: an exhausted pool that served a checkout
        in the last few seconds is ``busy`` (reachable); see :mod:`pooltender.readiness`.
        503 names the failing databases.
        """
        dbs = databases(request.app)
        names = list(dbs)
        results = await asyncio.gather(
            *(readiness(dbs[name], READY_TIMEOUT) for name in names), return_exceptions=True
        )
        failing = {
            name: (type(r).__name__ + (f": {r}" if str(r) else ""))
            for name, r in zip(names, results, strict=True)
            if isinstance(r, BaseException)
        }
        if failing:
            return JSONResponse(
                {"status": "unavailable", "failing": failing},
                status_code=503,
                headers={"Retry-After": "1"},
            )
        return JSONResponse({"status": "ok", "databases": dict(zip(names, results, strict=True))})

    return router
