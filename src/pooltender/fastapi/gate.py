"""``AdmissionGate``: refuse a request before routing when its database cannot take it.

When a pool is exhausted and its wait queue full, a request that needs that database
would be refused at its first checkout anyway, after routing, validation, dependency
solving and an exception's trip through the framework's middleware. The gate answers
the same ``503`` (same body, same ``Retry-After``) in front of all that, for a
fraction of the cost, so that a burst of refusals does not queue behind itself. While
no pool is saturated it costs one counter comparison per database per request.

Which databases a route needs is read from its dependency tree: pooltender's request
dependencies (``Session``, ``session_for(name)``, ``Connection``, ...) carry their
database's name. A route the gate cannot see into (one inside an included router or a
mount) is left alone: its dependency refuses it the same way, a little later.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from fastapi.responses import JSONResponse
from starlette.routing import BaseRoute, Match

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


class AdmissionGate:
    """Pure ASGI middleware (``install(app)`` adds it): ``503`` before routing for a
    request whose route needs a database whose pool would refuse it now."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._needs: dict[int, tuple[BaseRoute, frozenset[str]]] = {}

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
        """The saturated database the request's route needs, if any (routing as the
        router does: the first route that fully matches)."""
        router = getattr(scope["app"], "router", None)
        for route in getattr(router, "routes", ()):
            match, _ = route.matches(dict(scope))
            if match is not Match.FULL:
                continue
            needs = self._databases(route)
            return next((db for db in saturated if db.name in needs), None)
        return None

    def _databases(self, route: BaseRoute) -> frozenset[str]:
        cached = self._needs.get(id(route))
        if cached is not None and cached[0] is route:
            return cached[1]
        needs = databases_of(route)
        if len(self._needs) < 10_000:
            self._needs[id(route)] = (route, needs)
        return needs

    async def _refuse(self, db: Database, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            db.admit()  # counted and logged like any refusal
        except DatabaseUnavailable as exc:
            await unavailable_response(exc)(scope, receive, send)
            return
        await self.app(scope, receive, send)  # a connection came free meanwhile
