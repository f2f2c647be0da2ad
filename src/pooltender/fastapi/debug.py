"""Debug routes: ``GET /debug/pool-stats`` (JSON snapshot) and ``GET /metrics`` (Prometheus).

Access (:class:`DebugAccess`): with ``POOLTENDER_DEBUG_TOKEN`` set, a request needs
``Authorization: Bearer <token>`` (compared in constant time); unset, only loopback
clients (127.0.0.0/8, ::1) are answered. Refusals are ``401`` (no or wrong token)
and ``403`` (not loopback). The snapshot holds no secret: URLs are redacted.
"""

# No ``from __future__ import annotations`` here: FastAPI before 0.12x cannot resolve a
# string annotation on a callable instance's ``__call__`` (DebugAccess) and would take
# ``request`` for a query parameter.
import hmac
import ipaddress
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from .dependencies import databases

__all__ = ["DebugAccess", "debug_router"]


class DebugAccess:
    """The dependency guarding the debug routes (see the module docstring)."""

    def __init__(self, token: str | None) -> None:
        self._token = token.encode() if token else None

    def __call__(self, request: Request) -> None:
        if self._token is not None:
            header = request.headers.get("authorization", "")
            scheme, _, given = header.partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(
                given.strip().encode(), self._token
            ):
                raise HTTPException(
                    status_code=401,
                    detail="pooltender debug endpoints need `Authorization: Bearer <token>` "
                    "(POOLTENDER_DEBUG_TOKEN)",
                    headers={"WWW-Authenticate": "Bearer"},
                )
            return
        host = request.client.host if request.client else ""
        if not _is_loopback(host):
            raise HTTPException(
                status_code=403,
                detail="pooltender debug endpoints answer loopback clients only; "
                "set POOLTENDER_DEBUG_TOKEN to reach them from elsewhere",
            )


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


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
