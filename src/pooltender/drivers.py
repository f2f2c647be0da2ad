"""What pooltender knows of each database driver: async or sync, module, package.

Pure data and lookups; importing this module imports no driver.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

__all__ = ["Driver", "find_driver", "known_drivers"]


@dataclass(frozen=True, slots=True)
class Driver:
    """A SQLAlchemy dialect+driver pair as it appears in a URL (``postgresql+asyncpg``)."""

    backend: str
    name: str
    module: str
    package: str
    is_async: bool
    is_sync: bool

    @property
    def drivername(self) -> str:
        return f"{self.backend}+{self.name}"

    def installed(self) -> bool:
        return importlib.util.find_spec(self.module) is not None


_DRIVERS = (
    Driver("postgresql", "asyncpg", "asyncpg", "asyncpg", is_async=True, is_sync=False),
    Driver("postgresql", "psycopg", "psycopg", "psycopg[binary]", is_async=True, is_sync=True),
    Driver(
        "postgresql", "psycopg_async", "psycopg", "psycopg[binary]", is_async=True, is_sync=False
    ),
    Driver("postgresql", "psycopg2", "psycopg2", "psycopg2-binary", is_async=False, is_sync=True),
    Driver("sqlite", "aiosqlite", "aiosqlite", "aiosqlite", is_async=True, is_sync=False),
    Driver("sqlite", "pysqlite", "sqlite3", "(the standard library)", is_async=False, is_sync=True),
    Driver("mysql", "aiomysql", "aiomysql", "aiomysql", is_async=True, is_sync=False),
    Driver("mysql", "asyncmy", "asyncmy", "asyncmy", is_async=True, is_sync=False),
    Driver("mysql", "pymysql", "pymysql", "pymysql", is_async=False, is_sync=True),
    Driver("mariadb", "aiomysql", "aiomysql", "aiomysql", is_async=True, is_sync=False),
    Driver("mariadb", "asyncmy", "asyncmy", "asyncmy", is_async=True, is_sync=False),
    Driver("mariadb", "pymysql", "pymysql", "pymysql", is_async=False, is_sync=True),
)

_BY_NAME = {d.drivername: d for d in _DRIVERS}

# A URL without a driver ("postgresql://") gets the first installed one of these.
_DEFAULTS = {
    "postgresql": ("asyncpg", "psycopg"),
    "sqlite": ("pysqlite",),
    "mysql": ("aiomysql", "asyncmy", "pymysql"),
    "mariadb": ("aiomysql", "asyncmy", "pymysql"),
}


def known_drivers() -> list[str]:
    """Every ``backend+driver`` pooltender can build an engine for."""
    return sorted(_BY_NAME)


def find_driver(backend: str, name: str | None) -> Driver | None:
    """The driver a URL names; for a bare backend, the first installed default.

    ``postgres`` is accepted as an alias of ``postgresql`` (Heroku-style URLs).
    Returns None for a pair pooltender does not know.
    """
    if backend == "postgres":
        backend = "postgresql"
    if name is not None:
        return _BY_NAME.get(f"{backend}+{name}")
    candidates = [_BY_NAME[f"{backend}+{n}"] for n in _DEFAULTS.get(backend, ())]
    for driver in candidates:
        if driver.installed():
            return driver
    return candidates[0] if candidates else None
