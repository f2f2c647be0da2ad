"""``install(app)``: pools in the app's lifespan, the 503 handler, the pooltender routes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator, Callable, Mapping
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from prometheus_client import CollectorRegistry
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncEngine

from ..dashboard import dashboard_router
from ..databases import Databases
from ..errors import DatabaseUnavailable, PoolOverloaded, PooltenderError, PoolTimeout
from ..metrics import PoolCollector
from ..settings import PooltenderSettings, load_pooltender_settings
from ..workers import Publisher, WorkerSnapshots
from .abandoned import CancelOnDisconnect
from .debug import DebugAccess, debug_router
from .gate import AdmissionGate, unavailable_response
from .middleware import RequestContextMiddleware
from .routes import health_router
from .state import FACTORY_KEY, STATE_KEY

if TYPE_CHECKING:
    from opentelemetry.metrics import MeterProvider

    from ..otel import PoolInstruments

__all__ = ["database_unavailable_handler", "install"]

logger = logging.getLogger("pooltender")

DatabasesFactory = Callable[[], Databases]


def install(
    app: FastAPI,
    databases: Databases | DatabasesFactory | None = None,
    *,
    engines: Mapping[str, AsyncEngine | Engine] | None = None,
    health_prefix: str | None = "/health",
    stats_path: str | None = "/debug/pool-stats",
    metrics_path: str | None = "/metrics",
    dashboard_path: str | None = "/debug/pool",
    metrics_registry: CollectorRegistry | None = None,
    metrics_worker_label: bool = False,
    pooltender_settings: PooltenderSettings | None = None,
    opentelemetry: bool | MeterProvider = False,
    cancel_abandoned: bool = False,
) -> None:
    """Give ``app`` its database pools.

    - ``databases``: a :class:`Databases` or a function returning one; by default
      ``Databases.from_env()`` (``DATABASE_*`` variables and ``.env``), read when the
      app starts, so forked workers each build their own pools.
    - ``engines``: instead, engines the app built itself (``{"primary": engine}``):
      gated, monitored and answering ``503`` like pooltender's own, the app's own
      sessionmakers bound to them included (:meth:`Databases.from_engines`; the app
      keeps owning them: its pools come back at stop).
    - The app's own lifespan is kept: pools start before it and stop after it.
    - :class:`DatabaseUnavailable` (pool exhausted, wait queue full, database
      unreachable) answers ``503`` with ``Retry-After``.
    - Routes: ``{health_prefix}/live`` and ``{health_prefix}/ready`` (``None``: none);
      ``stats_path`` (the JSON snapshot) and ``metrics_path`` (Prometheus text), both
      behind :class:`~pooltender.fastapi.debug.DebugAccess` (``None``: left out).
    - ``dashboard_path``: the live dashboard page, same access rule; it reads the
      stats endpoint, so it needs ``stats_path`` in the same folder (``None``: left out).
    - ``metrics_registry``: where the pool collector is registered; by default a
      registry of this app's own (``app.state.pooltender_registry``), never the global
      one. ``metrics_worker_label``: add ``worker="<pid>"`` to every series.
    - ``pooltender_settings``: the ``POOLTENDER_*`` settings (default: read from the
      environment now); the databases built from the environment share them.
    - ``opentelemetry``: also export the pools' metrics through the OpenTelemetry
      Metrics API (:mod:`pooltender.otel`), on the global ``MeterProvider`` (``True``)
      or the one given; needs ``pooltender[otel]``.
    - A middleware records each request's route template for the pool monitor, and
      :class:`~pooltender.fastapi.gate.AdmissionGate` answers ``503`` before routing
      a request whose database's pool is exhausted with its wait queue full.
    - ``cancel_abandoned=True``: :class:`~pooltender.fastapi.abandoned.CancelOnDisconnect`
      cancels a request's work when its client disconnects before the response (opt a
      route out with :func:`~pooltender.fastapi.finish_when_abandoned`). Off by default:
      under a burst at ten times capacity it lengthened the served requests' latency
      (the fault suite's burst test), for a cause not yet found.
    """
    if getattr(app.state, "pooltender_installed", False):
        raise PooltenderError("pooltender.fastapi.install(app) was already called on this app")
    if engines is not None and databases is not None:
        raise PooltenderError("install(app): pass databases or engines, not both")
    app.state.pooltender_installed = True
    try:
        options = (
            pooltender_settings if pooltender_settings is not None else load_pooltender_settings()
        )
    except PooltenderError as exc:
        _log_start_failure(exc)
        raise
    if engines is not None:
        adopted = dict(engines)
        databases = lambda: Databases.from_engines(adopted, pooltender_settings=options)  # noqa: E731
    # Read at each start, so tests can swap it (pooltender.testing.override_databases).
    setattr(app.state, FACTORY_KEY, _factory(databases, options))
    inner = app.router.lifespan_context
    # Every worker of a process group in each scrape (POOLTENDER_METRICS_DIR).
    workers = WorkerSnapshots(options.metrics_dir) if options.metrics_dir else None
    instruments = (
        _instruments(app, None if opentelemetry is True else opentelemetry)
        if opentelemetry is not False
        else None
    )

    @contextlib.asynccontextmanager
    async def lifespan(app_: Any) -> AsyncIterator[Mapping[str, Any] | None]:
        try:
            dbs = getattr(app.state, FACTORY_KEY)()  # reads DATABASE_* by default
            if instruments is not None:
                instruments.watch(dbs)  # before start: the warm-up's connections count too
            await dbs.start()
        except PooltenderError as exc:
            _log_start_failure(exc)
            raise
        setattr(app.state, STATE_KEY, dbs)
        publisher = Publisher(workers, dbs.stats) if workers is not None else None
        try:
            if publisher is not None:
                publisher.start()
            async with inner(app_) as state:
                yield state
        finally:
            if instruments is not None:
                instruments.unwatch()
            if publisher is not None:
                await asyncio.to_thread(publisher.stop)
            await dbs.stop()
            delattr(app.state, STATE_KEY)

    app.router.lifespan_context = lifespan  # type: ignore[assignment]
    app.add_exception_handler(DatabaseUnavailable, database_unavailable_handler)  # type: ignore[arg-type]
    if options.monitor:
        app.add_middleware(RequestContextMiddleware)
    if cancel_abandoned:
        app.add_middleware(CancelOnDisconnect)  # a client gone: its statement cancelled
    app.add_middleware(AdmissionGate)  # outermost: refusals skip everything else
    if health_prefix is not None:
        app.include_router(health_router(), prefix=health_prefix)
    registry = metrics_registry if metrics_registry is not None else CollectorRegistry()
    if metrics_path is not None:
        registry.register(
            PoolCollector(
                lambda: getattr(app.state, STATE_KEY, None),
                worker=str(os.getpid()) if metrics_worker_label else None,
                workers=workers,
            )
        )
    app.state.pooltender_registry = registry
    access = DebugAccess(options.debug_token)
    if stats_path is not None or metrics_path is not None:
        app.include_router(
            debug_router(
                access,
                stats_path=stats_path,
                metrics_path=metrics_path,
                registry=registry,
            )
        )
    if dashboard_path is not None:
        folder, _, page = dashboard_path.rpartition("/")
        if stats_path != f"{folder}/pool-stats":
            raise PooltenderError(
                f"dashboard_path {dashboard_path!r} reads pool-stats relative to itself: "
                f"it needs stats_path={folder}/pool-stats"
            )
        app.include_router(dashboard_router(access, path="/" + page), prefix=folder)


def _log_start_failure(exc: PooltenderError) -> None:
    """One line, before the server's traceback: the variable or the database and host,
    and the reason (a ``ConfigurationError`` or ``StartupError`` message; never a password)."""
    logger.error("pooltender could not start: %s", exc)


def _instruments(app: FastAPI, provider: MeterProvider | None) -> PoolInstruments:
    from ..otel import PoolInstruments

    return PoolInstruments(lambda: getattr(app.state, STATE_KEY, None), meter_provider=provider)


def _factory(
    databases: Databases | DatabasesFactory | None, options: PooltenderSettings
) -> DatabasesFactory:
    if databases is None:
        return lambda: Databases.from_env(pooltender_settings=options)
    if isinstance(databases, Databases):
        return lambda: databases
    return databases


async def database_unavailable_handler(request: Request, exc: DatabaseUnavailable) -> JSONResponse:
    """``503`` naming the database and the reason, with ``Retry-After``.

    The body says no more than that; the full message (host, driver text) is logged,
    once per burst of failures of that database (the wait queue logged its own
    refusals and timeouts already)."""
    if not isinstance(exc, (PoolOverloaded, PoolTimeout)):
        dbs = getattr(request.app.state, STATE_KEY, None)
        db = dbs.get(exc.database) if isinstance(dbs, Databases) else None
        if db is not None:
            db.wait_queue.burst_log.record(exc)
        else:
            logger.warning("%s; answering 503", exc)
    return unavailable_response(exc)
