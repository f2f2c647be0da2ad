"""``Databases``: the named databases of a service (``primary``, ``analytics``, ...),
built from the environment, started and stopped together."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator, Mapping

from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncEngine

from .database import Database
from .errors import ConfigurationError
from .settings import (
    PRIMARY,
    DatabaseSettings,
    PooltenderSettings,
    load_database_settings,
    load_pooltender_settings,
)
from .stats import Snapshot

__all__ = ["Databases"]

logger = logging.getLogger("pooltender")


class Databases(Mapping[str, Database]):
    """The named databases of a service, started and stopped together."""

    def __init__(self, databases: Mapping[str, Database] | None = None) -> None:
        self._databases: dict[str, Database] = dict(databases or {})

    @classmethod
    def from_settings(
        cls,
        settings: Mapping[str, DatabaseSettings],
        *,
        pooltender_settings: PooltenderSettings | None = None,
    ) -> Databases:
        return cls(
            {
                name: Database(s, pooltender_settings=pooltender_settings)
                for name, s in settings.items()
            }
        )

    @classmethod
    def from_engines(
        cls,
        engines: Mapping[str, AsyncEngine | Engine],
        *,
        pooltender_settings: PooltenderSettings | None = None,
        environ: Mapping[str, str] | None = None,
        env_file: str | None = ".env",
    ) -> Databases:
        """The databases of engines the app built itself (``{"primary": engine}``): each
        gated and monitored between :meth:`start` and :meth:`stop`, the app's own
        sessionmakers bound to it included (see :meth:`Database.adopt`).

        Each engine keeps its own pool options unless its ``DATABASE_*`` variable is
        set; ``pooltender_settings`` default: read from the same environment.
        """
        if not engines:
            raise ConfigurationError("engines", "is empty; pass {'primary': engine, ...}")
        if pooltender_settings is None:
            pooltender_settings = load_pooltender_settings(environ, env_file=env_file)
        return cls(
            {
                name: Database.adopt(
                    engine,
                    name,
                    pooltender_settings=pooltender_settings,
                    environ=environ,
                    env_file=env_file,
                )
                for name, engine in engines.items()
            }
        )

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str] | None = None,
        *,
        env_file: str | None = ".env",
        defaults: Mapping[str, str] | None = None,
        pooltender_settings: PooltenderSettings | None = None,
    ) -> Databases:
        """Every database configured by ``DATABASE_*`` variables (see the README).

        ``pooltender_settings``: the process-wide ``POOLTENDER_*`` settings (default:
        read from the same environment). ``POOLTENDER_DATABASES`` chooses which
        databases start; without it, every ``DATABASE_<NAME>_URL`` is one, and the
        start log lists them.
        """
        if pooltender_settings is None:
            pooltender_settings = load_pooltender_settings(environ, env_file=env_file)
        settings = load_database_settings(
            environ, env_file=env_file, defaults=defaults, names=pooltender_settings.databases
        )
        if PRIMARY not in settings:
            raise ConfigurationError("DATABASE_URL", "is not set")
        if pooltender_settings.databases is None and len(settings) > 1:
            logger.info(
                "databases from the environment: %s (POOLTENDER_DATABASES chooses which start)",
                ", ".join(f"{name} ({s.variable('url')})" for name, s in settings.items()),
            )
        return cls.from_settings(settings, pooltender_settings=pooltender_settings)

    def __getitem__(self, name: str) -> Database:
        try:
            return self._databases[name]
        except KeyError:
            known = ", ".join(sorted(self._databases)) or "none"
            raise KeyError(
                f"no database {name!r} (configured: {known}); set DATABASE_{name.upper()}_URL"
            ) from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._databases)

    def __len__(self) -> int:
        return len(self._databases)

    def __repr__(self) -> str:
        return f"<Databases {list(self._databases.values())!r}>"

    @property
    def primary(self) -> Database:
        return self[PRIMARY]

    async def start(self) -> None:
        """Start every database concurrently; if one fails, stop the others and raise."""
        results = await asyncio.gather(
            *(db.start() for db in self._databases.values()), return_exceptions=True
        )
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            await self.stop()
            raise errors[0]

    async def stop(self) -> None:
        await asyncio.gather(*(db.stop() for db in self._databases.values()))

    def stats(self) -> Snapshot:
        """Every database's snapshot, now (``GET /debug/pool-stats`` is its JSON)."""
        return Snapshot(
            generated_at=time.time(),
            databases={name: db.stats() for name, db in self._databases.items()},
        )
