"""``install(app)``: pools in the app's lifespan, the 503 handler, the pooltender routes."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from ..database import Databases
from ..errors import DatabaseUnavailable, PooltenderError
from .dependencies import FACTORY_KEY, STATE_KEY
from .routes import health_router

__all__ = ["database_unavailable_handler", "install"]

logger = logging.getLogger("pooltender")

DatabasesFactory = Callable[[], Databases]


def install(
    app: FastAPI,
    databases: Databases | DatabasesFactory | None = None,
    *,
    health_prefix: str | None = "/health",
) -> None:
    """Give ``app`` its database pools.

    - ``databases``: a :class:`Databases` or a function returning one; by default
      ``Databases.from_env()`` (``DATABASE_*`` variables and ``.env``), read when the
      app starts, so forked workers each build their own pools.
    - The app's own lifespan is kept: pools start before it and stop after it.
    - :class:`DatabaseUnavailable` (pool exhausted, wait queue full, database
      unreachable) answers ``503`` with ``Retry-After``.
    - Routes: ``{health_prefix}/live`` and ``{health_prefix}/ready`` (``None``: none).
    """
    if getattr(app.state, "pooltender_installed", False):
        raise PooltenderError("pooltender.fastapi.install(app) was already called on this app")
    app.state.pooltender_installed = True
    # Read at each start, so tests can swap it (pooltender.testing.override_databases).
    setattr(app.state, FACTORY_KEY, _factory(databases))
    inner = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(app_: Any) -> AsyncIterator[Mapping[str, Any] | None]:
        dbs = getattr(app.state, FACTORY_KEY)()
        try:
            await dbs.start()
        except PooltenderError as exc:
            logger.error("pooltender could not start: %s", exc)
            raise
        setattr(app.state, STATE_KEY, dbs)
        try:
            async with inner(app_) as state:
                yield state
        finally:
            await dbs.stop()
            delattr(app.state, STATE_KEY)

    app.router.lifespan_context = lifespan  # type: ignore[assignment]
    app.add_exception_handler(DatabaseUnavailable, database_unavailable_handler)  # type: ignore[arg-type]
    if health_prefix is not None:
        app.include_router(health_router(), prefix=health_prefix)


def _factory(databases: Databases | DatabasesFactory | None) -> DatabasesFactory:
    if databases is None:
        return Databases.from_env
    if isinstance(databases, Databases):
        return lambda: databases
    return databases


async def database_unavailable_handler(request: Request, exc: DatabaseUnavailable) -> JSONResponse:
    """``503`` naming the database and the reason, with ``Retry-After``."""
    return JSONResponse(
        status_code=503,
        content={
            "detail": {
                "database": exc.database,
                "reason": exc.reason_code,
                "message": str(exc),
            }
        },
        headers={"Retry-After": str(exc.retry_after)},
    )
