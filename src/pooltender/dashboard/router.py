"""``dashboard_router(guard)``: the page and its static assets, with the caller's access rule."""

from __future__ import annotations

import functools
from collections.abc import Callable
from importlib import resources
from typing import Any

from fastapi import APIRouter, Depends, HTTPException
from fastapi.responses import HTMLResponse, Response

__all__ = ["ASSETS", "dashboard_router"]

# Every file the page may load, with its media type. Nothing else is served.
ASSETS: dict[str, str] = {
    "dashboard.js": "text/javascript; charset=utf-8",
    "dashboard.css": "text/css; charset=utf-8",
    "vendor/uPlot.iife.min.js": "text/javascript; charset=utf-8",
    "vendor/uPlot.min.css": "text/css; charset=utf-8",
    "vendor/uPlot.LICENSE": "text/plain; charset=utf-8",
}

# Only this origin: no CDN, no inline script, no eval. uPlot sizes its elements
# through the CSSOM (element.style), which style-src does not restrict.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}


@functools.cache
def _read(name: str) -> bytes:
    return resources.files(__package__).joinpath("static", *name.split("/")).read_bytes()


def dashboard_router(
    guard: Callable[..., Any] | None = None,
    *,
    path: str = "/pool",
) -> APIRouter:
    """The dashboard page at ``path`` and its assets under ``{path}/static/``.

    ``guard`` is a FastAPI dependency run before every answer (the debug
    endpoints' access rule: token or loopback); ``None`` serves everyone, for
    tests and trusted networks only. Include the router with the prefix of the
    stats endpoint (``/debug``): the page fetches ``pool-stats`` relative to itself.
    """
    if not path.startswith("/") or path.endswith("/"):
        raise ValueError(f"dashboard path {path!r} must start with '/' and not end with it")
    # Asset links in the page are relative to it: /debug/pool -> pool/static/...
    html = _read("page.html").replace(b"__ASSETS__", path.rsplit("/", 1)[1].encode() + b"/static")
    dependencies = [Depends(guard)] if guard is not None else []
    router = APIRouter(tags=["pooltender"], dependencies=dependencies)

    @router.get(path, response_class=HTMLResponse, include_in_schema=False)
    async def page() -> Response:
        """The live dashboard."""
        return Response(html, media_type="text/html; charset=utf-8", headers=_HEADERS)

    @router.get(path + "/static/{name:path}", include_in_schema=False)
    async def asset(name: str) -> Response:
        media_type = ASSETS.get(name)
        if media_type is None:
            raise HTTPException(404, f"no dashboard asset {name!r}")
        headers = {**_HEADERS, "Cache-Control": "public, max-age=3600"}
        return Response(_read(name), media_type=media_type, headers=headers)

    return router
