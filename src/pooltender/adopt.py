"""Adopt an engine the application built itself, without changing the engine object.

An existing service keeps its ``create_async_engine(...)``, its ``async_sessionmaker``
bound to that engine, its ``get_db`` and its use cases. pooltender borrows the engine
from :meth:`Database.start` to :meth:`Database.stop`:

- **the gate**: the engine's ``QueuePool`` is replaced (``engine.pool``, which
  ``Engine.dispose()`` also replaces) by pooltender's :class:`~pooltender.pool.GatedPool`
  built with the app's own pool options and listeners, as ``QueuePool.recreate()``
  would build its successor (:func:`pooltender.compat.queue_pool_options`). Every
  checkout through that engine, from any session or sessionmaker, is then bounded and
  refused with a ``503`` like those of pooltender's own engines;
- **errors**: a connection that cannot be opened or is lost becomes
  :class:`~pooltender.errors.DatabaseUnreachable` (the engine's own connect arguments
  are left alone);
- **the monitor** listens to the gated pool (:meth:`Database.start` attaches it);
- **failover detection** (:mod:`pooltender.failover`) as on pooltender's own engines,
  its listeners on the engine from :meth:`Adoption.attach` to :meth:`Adoption.release`;
- **recycling** (:mod:`pooltender.recycle`: jitter and pace) when the engine has a
  ``pool_recycle`` (or ``DATABASE_POOL_RECYCLE`` sets one): SQLAlchemy's own recycle
  is then off on the gated pool.

Settings: the app's own pool options stand and are what the snapshot shows; a
``DATABASE_*`` option set in the environment overrides its pool counterpart. A
pre-ping (the engine's ``pool_pre_ping=True`` or ``DATABASE_POOL_PRE_PING``) is
pooltender's own (:mod:`pooltender.ping`). The
options that shape a connection (statement timeout, PgBouncer mode, connect timeout)
belong to the engine's ``connect_args``: set there, not taken from the environment.

Ownership: the app owns the engine. At stop pooltender closes the connections its
pool opened and puts the app's own pool back, so the engine works after stop as it
did before start; the app may still ``await engine.dispose()`` in its own lifespan.
A pool that is no ``QueuePool`` (``NullPool``, ``StaticPool``) is monitored, not gated.
"""

from __future__ import annotations

import asyncio
import logging
import os
import weakref
from collections.abc import Callable, Mapping
from pathlib import Path

from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import AsyncAdaptedQueuePool, Pool, QueuePool

from . import compat
from .engine import _install_events
from .errors import ConfigurationError, LifecycleError
from .failover import FailoverDetector
from .fork import dispose_after_fork
from .ping import install_pre_ping
from .pool import GatedAsyncQueuePool, GatedPool, GatedQueuePool, WaitQueue
from .recycle import install_recycle
from .settings import _NAME_RE, PRIMARY, DatabaseSettings, load_database_settings

__all__ = ["Adoption", "adopted_settings"]

logger = logging.getLogger("pooltender")

# Options an adopted engine's connect_args decide (the environment cannot change them).
_CONNECTION_OPTIONS = ("statement_timeout", "pgbouncer", "connect_timeout")


def _sync(engine: AsyncEngine | Engine) -> Engine:
    if isinstance(engine, AsyncEngine):
        return engine.sync_engine
    if not isinstance(engine, Engine):
        raise ConfigurationError(
            "engines", f"expected a SQLAlchemy Engine or AsyncEngine, got {type(engine).__name__}"
        )
    return engine


def adopted_settings(
    engine: AsyncEngine | Engine,
    name: str = PRIMARY,
    *,
    environ: Mapping[str, str] | None = None,
    env_file: str | Path | None = ".env",
) -> DatabaseSettings:
    """The settings of an adopted engine: its URL and pool options, each overridden by
    its ``DATABASE_*`` variable where that is set (``environ``: the process environment
    by default, then ``env_file``)."""
    sync_engine = _sync(engine)
    if not _NAME_RE.match(name):
        raise ConfigurationError(
            "engines", f"{name!r} is not a database name (lower-case letters, digits, underscores)"
        )
    url = sync_engine.url
    pool = sync_engine.pool
    own: dict[str, object] = {}
    if isinstance(pool, QueuePool):
        options = compat.queue_pool_options(pool)
        own.update(
            pool_size=options["pool_size"],
            max_overflow=options["max_overflow"],
            pool_timeout=options["timeout"],
            pool_recycle=options["recycle"],
            pool_pre_ping=options["pre_ping"],
        )
    else:
        own.update(pool_size=0, pool_pre_ping=False)  # no bound pooltender can enforce
    url_variables = (
        ("DATABASE_URL", "DATABASE_PRIMARY_URL")
        if name == PRIMARY
        else (f"DATABASE_{name.upper()}_URL",)
    )
    given = dict(os.environ if environ is None else environ)
    rendered = url.render_as_string(hide_password=False)
    for variable in url_variables:
        if given.get(variable, "").strip() not in ("", rendered):
            logger.warning(
                "%s is set, but database %r uses the engine the app built (its own URL)",
                variable,
                name,
            )
        given[variable] = rendered
    try:
        from_env = load_database_settings(given, env_file=env_file, names=[name])[name]
    except ConfigurationError as exc:
        if exc.variable not in url_variables:
            raise
        raise ConfigurationError("engines", f"database {name!r}: {exc.reason}") from None
    overrides = {
        field: getattr(from_env, field)
        for field in from_env.model_fields_set
        if field not in ("url", "name")
    }
    for field in _CONNECTION_OPTIONS:
        if field in overrides:
            logger.warning(
                "%s does not apply to an engine the app built: set it in the engine's connect_args",
                from_env.variable(field),
            )
            del overrides[field]
    if not isinstance(engine, AsyncEngine) and from_env.driver.is_async:
        overrides["sync"] = True  # a driver that does both (psycopg), used sync here
    return DatabaseSettings(url=url, name=name, **{**own, **overrides})


class _Record:
    """What pooltender keeps of one adopted engine for as long as the engine lives."""

    def __init__(self, original: Pool) -> None:
        self.original = original
        self.owner: str | None = None  # the database that has it now
        self.on_connect_time: Callable[[float], None] | None = None
        self.failover: FailoverDetector | None = None  # its listeners, while adopted

    def connect_time(self, seconds: float) -> None:
        callback = self.on_connect_time
        if callback is not None:
            callback(seconds)


_records: weakref.WeakKeyDictionary[Engine, _Record] = weakref.WeakKeyDictionary()


class Adoption:
    """One engine the app built, borrowed from :meth:`attach` to :meth:`release`."""

    def __init__(self, engine: AsyncEngine | Engine) -> None:
        _sync(engine)  # a one-line error for anything else
        self.engine = engine

    @property
    def gated(self) -> bool:
        """True when the engine's pool is pooltender's (bounded waiting, 503s)."""
        return isinstance(_sync(self.engine).pool, GatedPool)

    def attach(
        self,
        settings: DatabaseSettings,
        *,
        wait_queue: WaitQueue,
        on_connect_time: Callable[[float], None] | None,
        on_wait: Callable[[float], None] | None,
        failover: FailoverDetector | None = None,
    ) -> AsyncEngine | Engine:
        """Put pooltender's pool, error translation, failover detection (``failover``)
        and recycling on the engine; returns it."""
        compat.verify()
        sync_engine = _sync(self.engine)
        record = _records.get(sync_engine)
        if record is None:
            record = _records[sync_engine] = _Record(sync_engine.pool)
            # Once per engine: these engine events cannot be moved to a later pool.
            _install_events(sync_engine, settings, record.connect_time, None, adopted=True)
            dispose_after_fork(sync_engine)
        if record.owner is not None:
            raise LifecycleError(
                f"this engine is already adopted by the running database {record.owner!r}"
            )
        record.owner = settings.name
        record.on_connect_time = on_connect_time
        original = record.original
        if isinstance(original, QueuePool):
            options = compat.queue_pool_options(original)
            options.update(
                pool_size=settings.pool_size,
                max_overflow=settings.max_overflow,
                timeout=settings.pool_timeout,
                recycle=settings.pool_recycle,
            )
            options["pre_ping"] = False  # pooltender's own pre-ping does it, where on
            if settings.pool_recycle > 0:
                options["recycle"] = -1  # pooltender recycles (jitter, pace)
            is_async = isinstance(original, AsyncAdaptedQueuePool)
            pool_class = GatedAsyncQueuePool if is_async else GatedQueuePool
            sync_engine.pool = pool_class(
                wait_queue=wait_queue,
                on_wait=on_wait,
                overflow_idle_timeout=settings.overflow_idle_timeout,
                **options,
            )
            # On the gated pool, in build_engine's order: dropped with the pool at release.
            if settings.pool_pre_ping:
                install_pre_ping(sync_engine, window=settings.pre_ping_window)
            if settings.pool_recycle > 0:
                install_recycle(sync_engine, settings.pool_recycle, settings.pool_size)
        else:
            logger.warning(
                "database %r: the engine's %s is no QueuePool: monitored, but its waiting "
                "is not bounded (no 503 on overload)",
                settings.name,
                type(original).__name__,
            )
        if failover is not None and failover.enabled:
            failover.install(sync_engine)
            record.failover = failover
        return self.engine

    async def release(self) -> None:
        """Close the connections pooltender's pool opened; give the app its pool back."""
        sync_engine = _sync(self.engine)
        record = _records.get(sync_engine)
        if record is None or record.owner is None:
            return
        try:
            if record.failover is not None:
                record.failover.remove(sync_engine)
                record.failover = None
            if sync_engine.pool is not record.original:
                if isinstance(self.engine, AsyncEngine):
                    await self.engine.dispose()
                else:
                    await asyncio.to_thread(sync_engine.dispose)
                sync_engine.pool = record.original
        finally:
            record.owner = None
            record.on_connect_time = None
