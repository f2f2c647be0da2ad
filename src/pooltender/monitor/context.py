"""The request a checkout belongs to: a context variable set by the web integration.

The FastAPI middleware (:mod:`pooltender.fastapi.middleware`) sets a
:class:`RequestContext` for each request; the monitor reads it at checkout. The
route template is resolved lazily from the ASGI scope, which the router fills in
place after matching (``scope["route"]``): a raw path never becomes a label.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import MutableMapping
from typing import Any

__all__ = ["NO_REQUEST", "UNMATCHED", "RequestContext", "current_request", "route_of"]

NO_REQUEST = "(no request)"
"""The route of a checkout made outside any request (startup, scripts, tasks)."""

UNMATCHED = "(unmatched)"

current_request: contextvars.ContextVar[RequestContext | None] = contextvars.ContextVar(
    "pooltender_request", default=None
)


class RequestContext:
    """One request: its ASGI scope, its task, and when its response started."""

    __slots__ = ("_route", "response_started", "scope", "task")

    def __init__(self, scope: MutableMapping[str, Any]) -> None:
        self.scope = scope
        self.response_started: float | None = None
        self._route: str | None = None
        try:
            self.task: asyncio.Task[Any] | None = asyncio.current_task()
        except RuntimeError:
            self.task = None

    @property
    def route(self) -> str:
        """``GET /users/{user_id}``: the method and the matched route's path template."""
        if self._route is not None:
            return self._route
        route = self.scope.get("route")
        path = getattr(route, "path", None)
        method = self.scope.get("method") or self.scope.get("type", "").upper()
        if not isinstance(path, str):
            return f"{method} {UNMATCHED}"  # not cached: routing may not have run yet
        self._route = f"{method} {self.scope.get('root_path', '')}{path}"
        return self._route


def route_of(context: RequestContext | None) -> str:
    return NO_REQUEST if context is None else context.route
