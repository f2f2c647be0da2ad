"""Settings, read from the environment and ``.env``: each option declared once.

Each option is one field below, declared with :func:`option`: its type and bounds
(validation), its default, the default as the README shows it, and what it means.
Parsing, the one-line error (``DATABASE_POOL_SIZE: ... (got '-1')``), the variable
names and the README's settings table (:func:`settings_table`, checked by a test) all
follow from that declaration.

- :class:`DatabaseSettings`: one database. The primary uses the seed-compatible names
  (``DATABASE_URL``, ``DATABASE_POOL_SIZE``, ...); another database ``<NAME>`` uses
  ``DATABASE_<NAME>_URL``, ``DATABASE_<NAME>_POOL_SIZE``, ... with the same options.
- :class:`PooltenderSettings`: process-wide, ``POOLTENDER_*``.

Every failure is a :class:`ConfigurationError` naming the variable and the reason.
Nothing here knows of engines.
"""

from __future__ import annotations

import difflib
import logging
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar

from dotenv import dotenv_values
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic.fields import FieldInfo
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from .drivers import Driver, find_driver, known_drivers
from .errors import ConfigurationError, DriverNotInstalled
from .secrets import credentials, is_credential_key, mask, redact_url

__all__ = [
    "PRIMARY",
    "DatabaseSettings",
    "PooltenderSettings",
    "check_debug_token",
    "load_database_settings",
    "load_pooltender_settings",
    "settings_table",
]

logger = logging.getLogger("pooltender")

PRIMARY = "primary"

_NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")

Model = TypeVar("Model", bound="_Settings")


def option(
    default: Any, shown: str, meaning: str, *, keep_empty: bool = False, **constraints: Any
) -> Any:
    """One option: its default, the default as the README shows it, its meaning, and
    pydantic's constraints (``ge=0``, ...). Floats are finite (no ``inf``, ``nan``).
    An empty value in the environment means unset, unless ``keep_empty``."""
    return Field(
        default,
        description=meaning,
        json_schema_extra={"shown": shown, "keep_empty": keep_empty},
        **constraints,
    )


class _Settings(BaseModel):
    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        arbitrary_types_allowed=True,
        allow_inf_nan=False,
        hide_input_in_errors=True,  # a URL's or a token's value is never in a message
    )

    PREFIX: ClassVar[str]

    @classmethod
    def options(cls) -> dict[str, FieldInfo]:
        """Every option (field) of this model, by field name, in declaration order."""
        return {
            name: info
            for name, info in cls.model_fields.items()
            if isinstance(info.json_schema_extra, dict) and "shown" in info.json_schema_extra
        }


class DatabaseSettings(_Settings):
    """The validated settings of one database.

    Build it from the environment with :func:`load_database_settings`, or directly:
    ``DatabaseSettings(url="sqlite+aiosqlite:///app.db", pool_size=3)``. Options left
    unset keep SQLAlchemy's own defaults (see :meth:`is_set`).
    """

    PREFIX: ClassVar[str] = "DATABASE_"

    name: str = PRIMARY
    url: URL = option(
        ...,
        "— (required)",
        "SQLAlchemy URL. Never printed with a credential. `postgresql://` and `postgres://` "
        "get asyncpg (or psycopg if asyncpg is missing)",
        keep_empty=True,
    )
    pool_size: int = option(5, "5", "connections kept open (`0`: no limit, as in SQLAlchemy)", ge=0)
    max_overflow: int = option(
        10, "10", "extra connections opened under load (`-1`: no limit)", ge=-1
    )
    overflow_idle_timeout: float = option(
        30.0,
        "30",
        "seconds an extra (overflow) connection stays open unused before it is closed and "
        "the pool shrinks back to its size (HikariCP's `idleTimeout`, psycopg_pool's "
        "`max_idle`). `0`: closed as soon as it is returned, as in SQLAlchemy, which under a "
        "load just above the pool size opens a new connection on almost every request",
        ge=0,
    )
    pool_timeout: float = option(
        30.0,
        "30",
        "seconds a request may wait for a connection; then `503` (reason `timeout`)",
        gt=0,
    )
    pool_recycle: int = option(
        3600,
        "3600",
        "seconds after which a connection is replaced, less a random 0-10 % per connection, "
        "and at most a quarter of the pool replaced per second, so connections opened "
        "together are not all reopened together ([recycling](docs/resilience.md#recycling)); "
        "`-1`: never",
        ge=-1,
    )
    pool_pre_ping: bool = option(
        True,
        "true",
        "test each connection on checkout; replaces those a restart or idle reaping killed",
    )
    pre_ping_window: float = option(
        0.0,
        "0",
        "seconds: a connection returned less than this ago skips the pre-ping's round trip "
        "if it *looks alive*: the driver has not seen it close and nothing waits on its "
        "socket (a terminated backend's FATAL error does), one `select()` call; HikariCP's "
        "`aliveBypassWindowMs`. Faster (see [performance](docs/performance.md)), but a "
        "backend killed an instant before a checkout, its FATAL error still on the way, "
        "fails that request. `0`: every checkout is checked (with asyncpg: a `Session`'s or "
        "`Connection`'s own `BEGIN`, else one `SELECT 1` over the simple protocol, "
        "PgBouncer-safe), so a backend killed between requests costs no request",
        ge=0,
    )
    max_waiting: int | None = option(
        None,
        "pool size + overflow",
        "requests allowed to wait for a connection; past it `503` at once (reason "
        "`overloaded`); `-1`: no limit",
        ge=-1,
    )
    leak_threshold: float = option(
        30.0,
        "30",
        "seconds a connection may stay checked out before it is reported as a suspected leak",
        gt=0,
    )
    statement_timeout: float | None = option(
        None,
        "unset",
        "seconds (at least 0.001); server-side: PostgreSQL `statement_timeout`, MariaDB "
        "`max_statement_time`, MySQL `max_execution_time`",
        ge=0.001,
        le=2_147_483,  # PostgreSQL's limit: INT_MAX milliseconds
    )
    pgbouncer: bool = option(
        False,
        "false",
        "behind PgBouncer in transaction mode: no prepared statement outlives a "
        "transaction, no startup parameter PgBouncer refuses",
    )
    connect_timeout: float = option(
        10.0,
        "10",
        "seconds to open a connection, always passed to the driver, so a dead host cannot "
        "hang a worker",
        gt=0,
        le=86_400,
    )
    connect_retries: int = option(
        3,
        "3",
        "retries of the start-up connectivity check (backoff 0.25 s, doubling, at most 5 s)",
        ge=0,
    )
    warmup: int | None = option(
        None,
        "pool size",
        "connections opened concurrently at start (`0`: none beyond the check)",
        ge=0,
    )
    retry_after: int = option(
        1, "1", "seconds in the `Retry-After` header of a `503`", ge=1, le=86_400
    )
    sync: bool | None = option(
        None,
        "by driver",
        "`true`: a sync engine (for `SyncSession`) with a driver that can do both (psycopg)",
    )
    start_mode: Literal["strict", "degraded"] = option(
        "strict",
        "strict",
        "`degraded`: start even when the database is down; requests needing it answer "
        "`503` and `/health/ready` fails until it answers, no restart needed",
    )
    read_only: bool = option(
        False,
        "false",
        "sessions of that database refuse to flush writes (`ReadOnlyError`) and its "
        "transactions are `READ ONLY` on the server: route reads to a replica with "
        '`session_for("<name>")`',
    )
    failover_detection: bool = option(
        True,
        "true",
        "leave a demoted primary: a write refused as read-only (PostgreSQL `25006`, "
        "MariaDB/MySQL `1290`) or a new connection to a standby or read-only server answers "
        "`503` (reason `failover`) and replaces every connection to that server "
        "([failover](docs/resilience.md#failover)); off for a `READ_ONLY` database",
    )

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
            url = value
        elif not isinstance(value, str) or not value.strip():
            raise ValueError("is empty; expected a URL such as postgresql+asyncpg://user@host/db")
        else:
            try:
                url = make_url(value.strip())
            except ArgumentError:
                raise ValueError(
                    "is not a database URL (expected e.g. postgresql+asyncpg://user:pass@host/db)"
                ) from None
            except ValueError:  # SQLAlchemy's int() of the port
                raise ValueError("has a port that is not a number") from None
        if "@" in (url.host or ""):
            # postgres:hunter2@x@db: SQLAlchemy ends the password at the first "@", so a
            # piece of it became the host, to be printed and looked up in DNS.
            raise ValueError(
                "has more than one '@' before the host: an '@' in the password must be "
                "percent-encoded as %40 (urllib.parse.quote(password, safe=''))"
            )
        backend, _, name = url.drivername.partition("+")
        driver = find_driver(backend, name or None)
        if driver is None:
            raise ValueError(
                f"unknown driver {url.drivername!r}; pooltender knows " + ", ".join(known_drivers())
            )
        _check_query(url, driver)
        return url

    @field_validator("sync")
    @classmethod
    def _check_sync(cls, value: bool | None, info: Any) -> bool | None:
        url = info.data.get("url")
        if value is not None and isinstance(url, URL):
            backend, _, name = url.drivername.partition("+")
            driver = find_driver(backend, name or None)
            if driver is not None and value and not driver.is_sync:
                raise ValueError(f"the driver {driver.drivername!r} is async only")
            if driver is not None and not value and not driver.is_async:
                raise ValueError(
                    f"the driver {driver.drivername!r} is sync only; name an async driver "
                    "in the URL (e.g. sqlite+aiosqlite://, postgresql+asyncpg://)"
                )
        return value

    # -- derived -----------------------------------------------------------------------

    @property
    def driver(self) -> Driver:
        backend, _, name = self.url.drivername.partition("+")
        driver = find_driver(backend, name or None)
        assert driver is not None  # checked when the URL was validated
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
        """Where the database is, for messages: ``host:port/db``, never a credential."""
        if self.driver.backend == "sqlite":
            return self.url.database or ":memory:"
        return f"{','.join(self.hosts)}/{self.url.database or ''}"

    @property
    def hosts(self) -> tuple[str, ...]:
        """Each server of the URL as ``host[:port]``: one, or those of a multi-host URL
        (``postgresql+asyncpg://app@/app?host=db1:5432&host=db2:5432``)."""
        if self.url.host is None and "host" in self.url.query:
            value = self.url.query["host"]
            return (value,) if isinstance(value, str) else tuple(value)
        port = f":{self.url.port}" if self.url.port else ""
        return (f"{self.url.host or 'localhost'}{port}",)

    def variable(self, field: str) -> str:
        """The environment variable of an option of this database."""
        if field not in self.options():
            raise KeyError(field)
        if self.name == PRIMARY:
            return f"{self.PREFIX}{field.upper()}"
        return f"{self.PREFIX}{self.name.upper()}_{field.upper()}"

    def is_set(self, field: str) -> bool:
        """Whether the option was given (else SQLAlchemy's or pooltender's default stands)."""
        return field in self.model_fields_set

    def __repr__(self) -> str:
        return f"DatabaseSettings(name={self.name!r}, url={redact_url(self.url)!r})"

    __str__ = __repr__


class PooltenderSettings(_Settings):
    """Process-wide settings: ``POOLTENDER_*`` from the environment and ``.env``
    (:func:`load_pooltender_settings`); ``PooltenderSettings()`` is the defaults."""

    PREFIX: ClassVar[str] = "POOLTENDER_"

    databases: tuple[str, ...] | None = option(
        None,
        "every `DATABASE_<NAME>_URL`",
        "comma-separated names of the databases to start (e.g. `primary,analytics`); "
        "other `DATABASE_<NAME>_*` variables are ignored. Unset: every database with a URL "
        "variable, listed in the start log",
    )
    debug_token: str | None = option(
        None,
        "unset",
        "when set, debug endpoints need `Authorization: Bearer <token>` (printable ASCII, "
        "no spaces; empty is refused); unset, they answer only direct requests on the "
        "machine itself ([Security](#security))",
        repr=False,
        keep_empty=True,
    )
    loop_block_threshold: float = option(
        0.1,
        "0.1",
        "seconds the event loop may stall while connections are held before a warning (0: off)",
        ge=0,
    )
    health_log_interval: float = option(
        0.0, "0 (off)", "seconds between one-line pool health logs per database", ge=0
    )
    monitor: bool = option(
        True, "true", "`false`: no pool monitor (no listeners, middleware or watchdog)"
    )
    metrics_dir: str | None = option(
        None,
        "unset",
        "a directory the workers of one process group share (`uvicorn --workers`, "
        "gunicorn): each worker publishes its snapshot there and `/metrics` answers for "
        "every worker, each with a `worker` label ([fleet](docs/fleet.md))",
    )

    @field_validator("debug_token", mode="before")
    @classmethod
    def _check_token(cls, value: object) -> object:
        if isinstance(value, str):
            try:
                return check_debug_token(value)
            except ConfigurationError as exc:
                raise ValueError(exc.reason) from None
        return value

    @field_validator("databases", mode="before")
    @classmethod
    def _split_names(cls, value: object) -> object:
        if isinstance(value, str):
            names = tuple(n.strip().lower() for n in value.split(",") if n.strip())
            for name in names:
                if not _NAME_RE.match(name):
                    raise ValueError(
                        f"{name!r} is not a database name (lower-case letters, digits, underscores)"
                    )
            return names
        return value

    def variable(self, field: str) -> str:
        if field not in self.options():
            raise KeyError(field)
        return f"{self.PREFIX}{field.upper()}"


def _check_query(url: URL, driver: Driver) -> None:
    """Refuse a URL query option the driver's dialect cannot convert
    (``?prepared_statement_cache_size=abc``), which would otherwise fail at the first
    connection. The dialect's own ``create_connect_args`` does the conversions; a driver
    that is not installed is left to :class:`DriverNotInstalled`."""
    if not url.query or not driver.installed():
        return
    explicit = url.set(drivername=driver.drivername)
    try:
        dialect_class: Any = explicit.get_dialect()  # a DefaultDialect: takes dbapi=
        dialect = dialect_class(dbapi=dialect_class.import_dbapi())
    except Exception:  # the driver's own surprise: its first connection reports it
        return
    try:
        dialect.create_connect_args(explicit)
    except (ValueError, TypeError, ArgumentError) as exc:
        problem = str(exc)
        keys = [
            f"{key}={value}"
            for key, value in url.query.items()
            if isinstance(value, str) and not is_credential_key(key) and repr(value) in problem
        ]
        named = f"the query option {keys[0]!r}" if len(keys) == 1 else "a query option"
        raise ValueError(
            f"{named} is not valid for {driver.drivername}: "
            + mask(problem.splitlines()[0] if problem else type(exc).__name__, credentials(url))
        ) from None


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


# -- loading -----------------------------------------------------------------------------


def _environment(
    environ: Mapping[str, str] | None,
    env_file: str | Path | None,
    defaults: Mapping[str, str] | None,
) -> dict[str, str]:
    """Precedence: ``environ`` (the process environment by default), ``env_file``, ``defaults``."""
    merged: dict[str, str] = dict(defaults or {})
    if env_file is not None and Path(env_file).is_file():
        merged.update({k: v for k, v in dotenv_values(env_file).items() if v is not None})
    merged.update(os.environ if environ is None else environ)
    return merged


def _validate(
    model: type[Model],
    given: Mapping[str, str],
    variables: Mapping[str, str],
    **fixed: Any,
) -> Model:
    """Build ``model`` from option values given as text; a :class:`ConfigurationError`
    naming the variable. An empty value means unset (except for a URL)."""
    values: dict[str, Any] = {}
    options = model.options()
    for field, value in given.items():
        text = value.strip()
        extra = options[field].json_schema_extra if field in options else None
        if text or (isinstance(extra, dict) and extra.get("keep_empty")):
            values[field] = value if field == "debug_token" else text
    try:
        return model(**fixed, **values)
    except ValidationError as exc:
        error = exc.errors()[0]
        field = str(error["loc"][0]) if error["loc"] else next(iter(given), "")
        variable = variables.get(field, field)
        reason = str(error["msg"]).removeprefix("Value error, ")
        info = model.model_fields.get(field)
        if field != "url" and field in given and (info is None or info.repr):
            reason += f" (got {given[field]!r})"  # never a secret's value
        raise ConfigurationError(variable, reason) from None


def load_pooltender_settings(
    environ: Mapping[str, str] | None = None,
    *,
    env_file: str | Path | None = ".env",
) -> PooltenderSettings:
    """The ``POOLTENDER_*`` settings of this process."""
    merged = _environment(environ, env_file, None)
    fields = PooltenderSettings.options()
    given: dict[str, str] = {}
    variables: dict[str, str] = {}
    for key, value in merged.items():
        if key.startswith(PooltenderSettings.PREFIX):
            field = key[len(PooltenderSettings.PREFIX) :].lower()
            if field in fields:
                given[field] = value
                variables[field] = key
    return _validate(PooltenderSettings, given, variables)


def load_database_settings(
    environ: Mapping[str, str] | None = None,
    *,
    env_file: str | Path | None = ".env",
    defaults: Mapping[str, str] | None = None,
    names: Iterable[str] | None = None,
) -> dict[str, DatabaseSettings]:
    """Every database configured by ``DATABASE_*`` variables, keyed by name.

    ``names``: only these databases (``POOLTENDER_DATABASES``); by default every one
    with a URL variable. Raises :class:`ConfigurationError` naming the variable, and
    :class:`DriverNotInstalled` for a URL whose driver is missing. A ``DATABASE_*``
    variable that is no option of any database is logged as a likely typo, with the
    nearest real name.
    """
    merged = _environment(environ, env_file, defaults)
    raw: dict[str, dict[str, str]] = {}
    variables: dict[str, dict[str, str]] = {}
    for key, value in sorted(merged.items()):
        if not key.startswith(DatabaseSettings.PREFIX):
            continue
        parsed = _parse_variable(key)
        if parsed is None:
            _warn_unknown(key)
            continue
        name, field = parsed
        if field in raw.get(name, {}):  # DATABASE_URL and DATABASE_PRIMARY_URL
            first = variables[name][field]
            if raw[name][field].strip() != value.strip():
                raise ConfigurationError(
                    key, f"{first} is set too, to another value: set one of them"
                )
            continue
        raw.setdefault(name, {})[field] = value
        variables.setdefault(name, {})[field] = key

    wanted = tuple(names) if names is not None else None
    result: dict[str, DatabaseSettings] = {}
    for name, fields in sorted(raw.items()):
        if wanted is not None and name not in wanted:
            continue
        if "url" not in fields:
            first = sorted(variables[name].values())[0]
            url_var = "DATABASE_URL" if name == PRIMARY else f"DATABASE_{name.upper()}_URL"
            raise ConfigurationError(first, f"set for database {name!r}, but {url_var} is not set")
        settings = _validate(DatabaseSettings, fields, variables[name], name=name)
        driver = settings.driver
        if not driver.installed():
            raise DriverNotInstalled(settings.variable("url"), driver.drivername, driver.package)
        result[name] = settings
    for name in wanted or ():
        if name not in result:
            url_var = "DATABASE_URL" if name == PRIMARY else f"DATABASE_{name.upper()}_URL"
            raise ConfigurationError(
                "POOLTENDER_DATABASES", f"names {name!r}, but {url_var} is not set"
            )
    return result


def _parse_variable(key: str) -> tuple[str, str] | None:
    """``DATABASE_POOL_SIZE`` -> (primary, pool_size); ``DATABASE_X_URL`` -> (x, url)."""
    rest = key[len(DatabaseSettings.PREFIX) :]
    fields = DatabaseSettings.options()
    if rest.lower() in fields:
        return PRIMARY, rest.lower()
    for field in sorted(fields, key=len, reverse=True):
        suffix = "_" + field.upper()
        if rest.endswith(suffix):
            name = rest[: -len(suffix)].lower()
            if not _NAME_RE.match(name):
                raise ConfigurationError(
                    key,
                    f"{name!r} is not a database name (letters, digits and underscores, "
                    "starting with a letter)",
                )
            return name, field
    return None


def _warn_unknown(key: str) -> None:
    """Log a ``DATABASE_*`` variable that looks like a misspelt option; ignore others
    (``DATABASE_HOST`` of an app's own configuration is none of pooltender's business)."""
    rest = key[len(DatabaseSettings.PREFIX) :]
    options = [field.upper() for field in DatabaseSettings.options()]
    nearest = difflib.get_close_matches(rest, options, n=1, cutoff=0.8)
    if nearest:
        suggestion = f"DATABASE_{nearest[0]}"
    else:  # the option part may follow a database name: DATABASE_ANALYTICS_POOLSIZE
        parts = rest.split("_")
        suggestion = ""
        for i in range(1, len(parts)):
            name, tail = "_".join(parts[:i]), "_".join(parts[i:])
            match = difflib.get_close_matches(tail, options, n=1, cutoff=0.8)
            if match:
                suggestion = f"DATABASE_{name}_{match[0]}"
                break
    if suggestion:
        logger.warning(
            "%s is not a pooltender setting and is ignored; did you mean %s?", key, suggestion
        )


def settings_table() -> str:
    """The README's settings table, rendered from the declarations above."""
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    for model in (DatabaseSettings, PooltenderSettings):
        for field, info in model.options().items():
            extra = info.json_schema_extra
            assert isinstance(extra, dict)
            variable = f"{model.PREFIX}{field.upper()}"
            if field == "read_only":
                variable = "DATABASE_<NAME>_READ_ONLY"
            rows.append(f"| `{variable}` | {extra['shown']} | {info.description} |")
    return "\n".join(rows)
