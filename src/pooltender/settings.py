"""Settings of each database, read from the environment and ``.env``.

The primary database uses the seed-compatible names (``DATABASE_URL``,
``DATABASE_POOL_SIZE``, ...); another database ``<NAME>`` uses
``DATABASE_<NAME>_URL``, ``DATABASE_<NAME>_POOL_SIZE``, ... with the same options.
Validation happens here, once, and every failure is a :class:`ConfigurationError`
naming the variable and the reason. Nothing here knows of engines.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, Literal

from dotenv import dotenv_values
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from .drivers import Driver, find_driver, known_drivers
from .errors import ConfigurationError, DriverNotInstalled

__all__ = [
    "PRIMARY",
    "DatabaseSettings",
    "PooltenderSettings",
    "check_debug_token",
    "load_database_settings",
    "redact_url",
]

PRIMARY = "primary"

_NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")


def redact_url(url: URL | str) -> str:
    """The URL as text with its password replaced by ``***``."""
    if isinstance(url, URL):
        return url.render_as_string(hide_password=True)
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        # Not parseable: mask anything between "://user:" and "@".
        return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)


class DatabaseSettings(BaseModel):
    """The validated settings of one database.

    Build it from the environment with :func:`load_database_settings`, or directly:
    ``DatabaseSettings(url="sqlite+aiosqlite:///app.db", pool_size=3)``.
    Fields left unset keep SQLAlchemy's own defaults (see :meth:`pool_options`).
    """

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    name: str = PRIMARY
    url: URL
    pool_size: int = Field(default=5, ge=0)
    max_overflow: int = Field(default=10, ge=-1)
    pool_timeout: float = Field(default=30.0, gt=0)
    pool_recycle: int = Field(default=3600, ge=-1)
    pool_pre_ping: bool = True
    pre_ping_window: float = Field(default=0.0, ge=0)
    overflow_idle_timeout: float = Field(default=30.0, ge=0)
    max_waiting: int | None = Field(default=None, ge=-1)
    leak_threshold: float = Field(default=30.0, gt=0)
    statement_timeout: float | None = Field(default=None, gt=0)
    pgbouncer: bool = False
    connect_timeout: float = Field(default=10.0, gt=0)
    connect_retries: int = Field(default=3, ge=0)
    warmup: int | None = Field(default=None, ge=0)
    retry_after: int = Field(default=1, ge=1)
    sync: bool | None = None
    start_mode: Literal["strict", "degraded"] = "strict"
    read_only: bool = False

    # Variable suffix of each option (``DATABASE_[<NAME>_]<SUFFIX>``).
    OPTIONS: ClassVar[dict[str, str]] = {
        "URL": "url",
        "POOL_SIZE": "pool_size",
        "MAX_OVERFLOW": "max_overflow",
        "POOL_TIMEOUT": "pool_timeout",
        "POOL_RECYCLE": "pool_recycle",
        "POOL_PRE_PING": "pool_pre_ping",
        "PRE_PING_WINDOW": "pre_ping_window",
        "OVERFLOW_IDLE_TIMEOUT": "overflow_idle_timeout",
        "MAX_WAITING": "max_waiting",
        "LEAK_THRESHOLD": "leak_threshold",
        "STATEMENT_TIMEOUT": "statement_timeout",
        "PGBOUNCER": "pgbouncer",
        "CONNECT_TIMEOUT": "connect_timeout",
        "CONNECT_RETRIES": "connect_retries",
        "WARMUP": "warmup",
        "RETRY_AFTER": "retry_after",
        "SYNC": "sync",
        "START_MODE": "start_mode",
        "READ_ONLY": "read_only",
    }

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        if not _NAME_RE.match(value):
            raise ValueError("a database name is lower-case letters, digits and underscores")
        return value

    @field_validator("url", mode="before")
    @classmethod
    def _parse_url(cls, value: object) -> URL:
        if isinstance(value, URL):
            return value
        if not isinstance(value, str) or not value.strip():
            raise ValueError("is empty; expected a URL such as postgresql+asyncpg://user@host/db")
        try:
            url = make_url(value.strip())
        except ArgumentError:
            raise ValueError(
                "is not a database URL (expected e.g. postgresql+asyncpg://user:pass@host/db)"
            ) from None
        return url

    def model_post_init(self, context: Any, /) -> None:
        driver = self.driver  # validates backend+driver
        if not driver.installed():
            raise DriverNotInstalled(self.variable("url"), driver.drivername, driver.package)
        if self.sync is True and not driver.is_sync:
            raise ConfigurationError(
                self.variable("sync"), f"the driver {driver.drivername!r} is async only"
            )

    # -- derived -----------------------------------------------------------------------

    @property
    def driver(self) -> Driver:
        backend, _, name = self.url.drivername.partition("+")
        driver = find_driver(backend, name or None)
        if driver is None:
            raise ConfigurationError(
                self.variable("url"),
                f"unknown driver {self.url.drivername!r}; pooltender knows "
                + ", ".join(known_drivers()),
            )
        return driver

    @property
    def is_async(self) -> bool:
        """True when this database gets an async engine (the default where the driver can)."""
        if self.sync is not None:
            return not self.sync
        return self.driver.is_async

    @property
    def engine_url(self) -> URL:
        """The URL with its driver made explicit (``postgresql://`` -> ``postgresql+asyncpg://``)."""
        driver = self.driver
        name = driver.name
        if driver.name == "psycopg" and self.is_async:
            name = "psycopg_async"
        return self.url.set(drivername=f"{driver.backend}+{name}")

    @property
    def is_sqlite_memory(self) -> bool:
        database = self.url.database or ""
        return self.driver.backend == "sqlite" and (
            database in ("", ":memory:") or "mode=memory" in str(self.url.query.get("mode", ""))
        )

    @property
    def max_connections(self) -> int | None:
        """Connections this pool may hold at once; None when unbounded."""
        if self.is_sqlite_memory:
            return 1
        if self.pool_size == 0 or self.max_overflow == -1:
            return None
        return self.pool_size + self.max_overflow

    @property
    def wait_limit(self) -> int | None:
        """Requests allowed to wait for a connection; None when unbounded.

        Unset, it is as long as the pool is wide: a burst larger than twice the pool
        is refused at once instead of queueing for ``pool_timeout`` seconds.
        """
        if self.max_waiting == -1:
            return None
        if self.max_waiting is not None:
            return self.max_waiting
        return self.max_connections

    @property
    def host(self) -> str:
        """Where the database is, for messages: ``host:port/db``, never the password."""
        if self.driver.backend == "sqlite":
            return self.url.database or ":memory:"
        port = f":{self.url.port}" if self.url.port else ""
        return f"{self.url.host or 'localhost'}{port}/{self.url.database or ''}"

    def variable(self, field: str) -> str:
        """The environment variable of a field of this database."""
        suffix = next(k for k, v in self.OPTIONS.items() if v == field)
        if self.name == PRIMARY:
            return f"DATABASE_{suffix}"
        return f"DATABASE_{self.name.upper()}_{suffix}"

    def is_set(self, field: str) -> bool:
        return field in self.model_fields_set

    def __repr__(self) -> str:
        return f"DatabaseSettings(name={self.name!r}, url={redact_url(self.url)!r})"

    __str__ = __repr__


class PooltenderSettings(BaseSettings):
    """Process-wide settings: ``POOLTENDER_*`` from the environment and ``.env``."""

    model_config = SettingsConfigDict(env_prefix="POOLTENDER_", env_file=".env", extra="ignore")

    monitor: bool = True
    """``POOLTENDER_MONITOR``: false turns the pool monitor off (no listeners, no watchdog)."""
    debug_token: str | None = Field(default=None, repr=False)
    """``POOLTENDER_DEBUG_TOKEN``: debug endpoints need ``Authorization: Bearer <token>``.
    Checked by :func:`check_debug_token` where it is used (the debug routes, the CLI)."""
    loop_block_threshold: float = Field(default=0.1, ge=0)
    """``POOLTENDER_LOOP_BLOCK_THRESHOLD``: seconds the event loop may stall while
    connections are held before a WARNING names the stuck frame (0: no watchdog)."""
    health_log_interval: float = Field(default=0.0, ge=0)
    """``POOLTENDER_HEALTH_LOG_INTERVAL``: seconds between pool health lines (0: off)."""


def check_debug_token(value: str, variable: str = "POOLTENDER_DEBUG_TOKEN") -> str:
    """The token without surrounding whitespace, or a :class:`ConfigurationError`.

    Empty or blank is refused (not taken as unset, which would mean loopback-only
    access), and so is anything but printable ASCII without spaces: HTTP clients
    send header values as ASCII (httpx refuses others, browsers and servers differ),
    so such a token would not match reliably. The message never contains the value.
    """
    token = value.strip()
    if not token:
        raise ConfigurationError(
            variable,
            f"is empty; set a token ({_TOKEN_EXAMPLE}) or unset it for loopback-only access",
        )
    if not all("!" <= char <= "~" for char in token):
        raise ConfigurationError(
            variable, f"must be printable ASCII without spaces ({_TOKEN_EXAMPLE})"
        )
    return token


_TOKEN_EXAMPLE = "e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))'"


def load_database_settings(
    environ: Mapping[str, str] | None = None,
    *,
    env_file: str | Path | None = ".env",
    defaults: Mapping[str, str] | None = None,
) -> dict[str, DatabaseSettings]:
    """Every database configured by ``DATABASE_*`` variables, keyed by name.

    Precedence: ``environ`` (the process environment by default), then ``env_file``,
    then ``defaults``. Raises :class:`ConfigurationError` naming the variable.
    """
    merged: dict[str, str] = dict(defaults or {})
    if env_file is not None and Path(env_file).is_file():
        merged.update({k: v for k, v in dotenv_values(env_file).items() if v is not None})
    merged.update(os.environ if environ is None else environ)

    raw: dict[str, dict[str, str]] = {}
    variables: dict[tuple[str, str], str] = {}
    for key, value in merged.items():
        parsed = _parse_variable(key)
        if parsed is None:
            continue
        name, field = parsed
        raw.setdefault(name, {})[field] = value
        variables[(name, field)] = key

    result: dict[str, DatabaseSettings] = {}
    for name, fields in sorted(raw.items()):
        if "url" not in fields:
            first = sorted(variables[(name, f)] for f in fields)[0]
            url_var = "DATABASE_URL" if name == PRIMARY else f"DATABASE_{name.upper()}_URL"
            raise ConfigurationError(first, f"set for database {name!r}, but {url_var} is not set")
        result[name] = _validate(name, fields, variables)
    return result


def _parse_variable(key: str) -> tuple[str, str] | None:
    """``DATABASE_POOL_SIZE`` -> (primary, pool_size); ``DATABASE_X_URL`` -> (x, url)."""
    if not key.startswith("DATABASE_"):
        return None
    rest = key[len("DATABASE_") :]
    options = DatabaseSettings.OPTIONS
    if rest in options:
        return PRIMARY, options[rest]
    for suffix in sorted(options, key=len, reverse=True):
        if rest.endswith("_" + suffix):
            name = rest[: -len(suffix) - 1].lower()
            if _NAME_RE.match(name):
                return name, options[suffix]
    return None


def _validate(
    name: str, fields: dict[str, str], variables: dict[tuple[str, str], str]
) -> DatabaseSettings:
    values: dict[str, Any] = {
        field: (None if value.strip() == "" and field != "url" else value.strip())
        for field, value in fields.items()
    }
    values = {k: v for k, v in values.items() if v is not None}
    try:
        return DatabaseSettings(name=name, **values)
    except ValidationError as exc:
        error = exc.errors()[0]
        original = (error.get("ctx") or {}).get("error")
        if isinstance(original, ConfigurationError):
            raise original from None
        field = str(error["loc"][0]) if error["loc"] else "url"
        variable = variables.get((name, field), field)
        reason = str(error["msg"]).removeprefix("Value error, ")
        if field != "url":
            reason += f" (got {fields.get(field, '')!r})"
        raise ConfigurationError(variable, reason) from None
