"""``AdmissionGate``: refuse a request before routing when its database cannot take it.

When a pool is exhausted and its wait queue full, a request that needs that database
would be refused at its first checkout anyway, after routing, validation, dependency
solving and an exception's trip through the framework's middleware. The gate answers
the same ``503`` (same body, same ``Retry-After``) in front of all that, for a
fraction of the cost, so that a burst of refusals does not queue behind itself. While
no pool is saturated it costs one counter comparison per database per request.

Which databases a route needs is read from its dependency tree: pooltender's request
dependencies (``Session``, ``session_for(name)``, ``Connection``, ...) carry their
database's name. Routes inside included routers are seen with their full paths (through
FastAPI's ``iter_route_contexts``, where the installed FastAPI has it); a request the
gate cannot place is left alone, and its dependency refuses it the same way, a little
later.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

from fastapi.responses import JSONResponse
from starlette.routing import BaseRoute, Match, Route, compile_path

from ..database import Database
from ..databases import Databases
from ..errors import DatabaseUnavailable
from .dependencies import DATABASE_ATTRIBUTE, STATE_KEY

__all__ = ["AdmissionGate", "unavailable_response"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def unavailable_response(exc: DatabaseUnavailable) -> JSONResponse:
    """The ``503`` of an unavailable database: JSON ``detail`` naming the database and
    the reason, and ``Retry-After``."""
    detail = {"database": exc.database, "reason": exc.reason_code, "message": str(exc)}
    return JSONResponse(
        status_code=503,
        content={"detail": detail},
        headers={"Retry-After": str(exc.retry_after)},
    )


def databases_of(route: BaseRoute) -> frozenset[str]:
    """The databases whose pooltender dependencies ``route`` (or its dependencies) uses."""
    names: set[str] = set()
    dependant = getattr(route, "dependant", None)
    stack = [dependant] if dependant is not None else []
    while stack:
        current = stack.pop()
        name = getattr(current.call, DATABASE_ATTRIBUTE, None)
        if isinstance(name, str):
            names.add(name)
        stack.extend(current.dependencies)
    return frozenset(names)


class _Entry:
    """One route in routing order: its full path's pattern and methods, and the
    databases it needs; or, for a route of another kind, the route to ask."""

    __slots__ = ("databases", "methods", "pattern", "route")

    def __init__(self, route: Any) -> None:
        original = getattr(route, "original_route", route)
        path = getattr(route, "path", None)
        self.route: Any = None
        self.pattern: re.Pattern[str] | None = None
        self.methods: frozenset[str] | None = None
        self.databases = databases_of(original)
        if isinstance(original, Route) and isinstance(path, str):
            self.pattern = compile_path(path)[0]
            methods = getattr(route, "methods", None)
            self.methods = frozenset(methods) if methods else None
        else:
            self.route = route

    def match(self, scope: Scope, path: str) -> Match:
        if self.pattern is None:
            return Match.NONE if self.route is None else self.route.matches(dict(scope))[0]
        if self.pattern.match(path) is None:
            return Match.NONE
        if self.methods is not None and scope["method"] not in self.methods:
            return Match.PARTIAL
        return Match.FULL


def _routes_in_order(routes: list[BaseRoute]) -> Iterable[Any]:
    try:
        from fastapi.routing import iter_route_contexts  # FastAPI >= 0.16x: included routers
    except ImportError:  # pragma: no cover - older FastAPI flattens included routers itself
        return routes
    return iter_route_contexts(routes)


def _route_path(scope: Scope) -> str:
    path: str = scope["path"]
    root = scope.get("root_path", "")
    if root and path.startswith(root) and (len(path) == len(root) or path[len(root)] == "/"):
        return path[len(root) :]
    return path


class AdmissionGate:
    """Pure ASGI middleware (``install(app)`` adds it): ``503`` before routing for a
    request whose route needs a database whose pool would refuse it now."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._table: list[_Entry] = []
        self._table_of: tuple[int, int] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            dbs = getattr(getattr(scope.get("app"), "state", None), STATE_KEY, None)
            if isinstance(dbs, Databases):
                saturated = [db for db in dbs.values() if db.saturated()]
                if saturated:
                    refused = self._refused(scope, saturated)
                    if refused is not None:
                        await self._refuse(refused, scope, receive, send)
                        return
        await self.app(scope, receive, send)

    def _refused(self, scope: Scope, saturated: list[Database]) -> Database | None:
        """The saturated database the request's route needs, if any: the first route
        that fully matches, in the router's order."""
        path = _route_path(scope)
        for entry in self._routes(scope["app"]):
            if entry.match(scope, path) is Match.FULL:
                return next((db for db in saturated if db.name in entry.databases), None)
        return None

    def _routes(self, app: Any) -> list[_Entry]:
        routes = getattr(getattr(app, "router", None), "routes", [])
        signature = (id(routes), len(routes))
        if signature != self._table_of:  # built at the first saturation, again if routes change
            self._table = [_Entry(route) for route in _routes_in_order(routes)]
            self._table_of = signature
        return self._table

    async def _refuse(self, db: Database, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            db.admit()  # counted and logged like any refusal
        except DatabaseUnavailable as exc:
            await unavailable_response(exc)(scope, receive, send)
            return
        await self.app(scope, receive, send)  # a connection came free meanwhile
