"""An engine for migrations (alembic's ``env.py``) from the service's own settings.

A migration runs a few statements on one connection and exits. Starting a
:class:`~pooltender.Database` for it would verify, read the server's limit and warm a
whole pool; :func:`migration_engine` builds the same URL, driver and connection
options (connect timeout, PgBouncer mode) with ``NullPool``: each ``connect()`` opens
one connection and closes it, nothing is opened before. No statement timeout: a
migration (an index build) may rightly run longer than any request.

An app that builds its own engine (``install(app, engines=...)``) needs none of this:
its ``env.py`` keeps importing that engine, and pooltender, which only borrows an
engine between a database's start and stop, is not involved.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from pydantic import ValidationError
from sqlalchemy import create_engine
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from .engine import sqlalchemy_options
from .errors import ConfigurationError
from .settings import PRIMARY, DatabaseSettings, load_database_settings

__all__ = ["migration_engine"]


def migration_engine(
    name: str = PRIMARY,
    *,
    sync: bool = False,
    settings: DatabaseSettings | None = None,
    environ: Mapping[str, str] | None = None,
    env_file: str | Path | None = ".env",
) -> AsyncEngine | Engine:
    """The engine of database ``name`` (from ``DATABASE_*`` and ``.env``, or
    ``settings``) for a migration: no pool, nothing opened yet.

    ``sync=True``: a sync engine, for a sync ``env.py`` (the URL's driver must do sync:
    psycopg, psycopg2, pysqlite, pymysql). Dispose it when done.
    """
    if settings is None:
        settings = load_database_settings(environ, env_file=env_file, names=[name])[name]
    values = {field: getattr(settings, field) for field in settings.model_fields_set}
    values.pop("statement_timeout", None)
    if sync:
        values["sync"] = True
    try:
        settings = DatabaseSettings(**values)
    except ValidationError as exc:  # the driver is async only
        reason = str(exc.errors()[0]["msg"]).removeprefix("Value error, ")
        raise ConfigurationError(settings.variable("url"), reason) from None
    options = sqlalchemy_options(settings)
    kept = {key: options[key] for key in ("connect_args", "execution_options") if key in options}
    if settings.is_async:
        return create_async_engine(settings.engine_url, poolclass=NullPool, **kept)
    return create_engine(settings.engine_url, poolclass=NullPool, **kept)
