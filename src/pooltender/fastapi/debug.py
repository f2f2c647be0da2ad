"""Debug routes: ``GET /debug/pool-stats`` (JSON snapshot) and ``GET /metrics`` (Prometheus).

Both sit behind :class:`~pooltender.fastapi.access.DebugAccess`: the token when
``POOLTENDER_DEBUG_TOKEN`` is set (``401`` otherwise), else only direct loopback
requests that no proxy forwarded (``403`` otherwise). The snapshot holds no secret:
URLs are redacted.
"""

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from .access import DebugAccess
from .dependencies import databases

__all__ = ["DebugAccess", "debug_router"]


def debug_router(
    access: DebugAccess,
    *,
    stats_path: str | None = "/debug/pool-stats",
    metrics_path: str | None = "/metrics",
    registry: CollectorRegistry | None = None,
) -> APIRouter:
    """The debug routes; ``None`` for a path leaves that route out."""
    router = APIRouter(tags=["pooltender"], dependencies=[Depends(access)])

    if stats_path is not None:

        @router.get(stats_path)
        async def pool_stats(request: Request) -> JSONResponse:
            """Every database's snapshot: pool figures, durations, routes, held connections."""
            document: dict[str, Any] = databases(request.app).stats().to_json()
            return JSONResponse(document, headers={"Cache-Control": "no-store"})

    if metrics_path is not None and registry is not None:
        metrics_registry = registry

        @router.get(metrics_path)
        async def metrics() -> Response:
            """Prometheus text format, read from the snapshots now."""
            return Response(generate_latest(metrics_registry), media_type=CONTENT_TYPE_LATEST)

    return router
