"""Health routes: liveness without I/O, readiness that pings every database."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

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
        """Every database answers ``SELECT 1`` within a short timeout; else 503."""
        dbs = databases(request.app)
        names = list(dbs)
        results = await asyncio.gather(
            *(dbs[name].ping(READY_TIMEOUT) for name in names), return_exceptions=True
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
        return JSONResponse({"status": "ok", "databases": names})

    return router
