"""Health routes: liveness without I/O, readiness that checks every database at once."""

from __future__ import annotations

import asyncio
import logging

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from ..engine import describe_error
from ..errors import DatabaseUnavailable
from ..readiness import readiness
from ..secrets import credentials
from .dependencies import databases

__all__ = ["health_router"]

logger = logging.getLogger("pooltender")

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
        503 names the failing databases and the reason of each (``unreachable``,
        ``timeout``, ...), nothing more: anyone may ask. The full error is logged.
        """
        dbs = databases(request.app)
        names = list(dbs)
        results = await asyncio.gather(
            *(readiness(dbs[name], READY_TIMEOUT) for name in names), return_exceptions=True
        )
        failing: dict[str, str] = {}
        for name, result in zip(names, results, strict=True):
            if isinstance(result, BaseException):
                failing[name] = _reason(result)
                logger.warning(
                    "/health/ready: database %r is not ready: %s",
                    name,
                    describe_error(result, credentials(dbs[name].settings.url)),
                )
        if failing:
            return JSONResponse(
                {"status": "unavailable", "failing": failing},
                status_code=503,
                headers={"Retry-After": "1"},
            )
        return JSONResponse({"status": "ok", "databases": dict(zip(names, results, strict=True))})

    return router


def _reason(error: BaseException) -> str:
    """What an anonymous client learns of a failed readiness check: the reason only."""
    if isinstance(error, DatabaseUnavailable):
        return error.reason_code
    if isinstance(error, TimeoutError):
        return "timeout"
    return "unreachable"
