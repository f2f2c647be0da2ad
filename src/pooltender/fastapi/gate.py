"""``AdmissionGate``: refuse a request before routing when its database cannot take it.

When a pool is exhausted and its wait queue full, a request that needs that database
would be refused at its first checkout anyway, after routing, validation, dependency
solving and an exception's trip through the framework's middleware. The gate answers
the same ``503`` (same body, same ``Retry-After``) in front of all that, for a fifth
of the CPU (``benchmarks/refusal_cost.py``), so that a burst of refusals does not
queue behind itself. While no pool is saturated it costs one comparison per database
per request.

The rule is the pool's (:meth:`pooltender.pool.GatedPool.would_refuse`, through
:meth:`Database.saturated` and :meth:`Database.admit`); the gate only decides *which*
database a request needs, from the route table (:mod:`.routetable`): pooltender's
request dependencies carry their database's name. A request the gate cannot place is
left alone, and its dependency refuses it the same way, a little later.
"""

from __future__ import annotations

from fastapi.responses import JSONResponse

from ..databases import Databases
from ..errors import DatabaseUnavailable
from .asgi import ASGIApp, Receive, Scope, Send
from .routetable import route_table
from .state import STATE_KEY

__all__ = ["AdmissionGate", "unavailable_response"]


def unavailable_response(exc: DatabaseUnavailable) -> JSONResponse:
    """The ``503`` of an unavailable database: JSON ``detail`` naming the database and
    the reason, and ``Retry-After``. The client may be anyone: the message is the
    error's :attr:`~pooltender.DatabaseUnavailable.public_message` (no host, port or
    driver text); the full one goes to the log."""
    detail = {"database": exc.database, "reason": exc.reason_code, "message": exc.public_message}
    return JSONResponse(
        status_code=503,
        content={"detail": detail},
        headers={"Retry-After": str(exc.retry_after)},
    )


class AdmissionGate:
    """Pure ASGI middleware (``install(app)`` adds it): ``503`` before routing for a
    request whose route needs a database whose pool would refuse it now."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            dbs = getattr(getattr(scope.get("app"), "state", None), STATE_KEY, None)
            if isinstance(dbs, Databases):
                saturated = [db for db in dbs.values() if db.saturated()]
                if saturated:
                    needed = route_table(scope["app"]).databases_for(scope) or frozenset()
                    for db in saturated:
                        if db.name in needed:
                            try:
                                db.admit()  # counted and logged like any refusal
                            except DatabaseUnavailable as exc:
                                await unavailable_response(exc)(scope, receive, send)
                                return
        await self.app(scope, receive, send)
