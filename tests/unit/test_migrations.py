"""migration_engine(): the service's settings, no pool to warm, no statement timeout."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import NullPool

from pooltender import ConfigurationError, migration_engine


def test_an_async_engine_from_the_environment_without_a_pool(tmp_path: object) -> None:
    environ = {
        "DATABASE_URL": "postgresql+asyncpg://app:s3cret@db.internal/app",
        "DATABASE_POOL_SIZE": "20",
        "DATABASE_STATEMENT_TIMEOUT": "2",
        "DATABASE_CONNECT_TIMEOUT": "4",
    }
    engine = migration_engine(environ=environ, env_file=None)
    assert isinstance(engine, AsyncEngine)
    assert isinstance(engine.sync_engine.pool, NullPool)  # nothing kept open, nothing warmed
    assert engine.url.password == "s3cret" and engine.url.host == "db.internal"


def test_a_sync_engine_for_a_sync_env_py(tmp_path: object) -> None:
    environ = {"DATABASE_ANALYTICS_URL": f"sqlite:///{tmp_path}/m.db"}
    engine = migration_engine("analytics", sync=True, environ=environ, env_file=None)
    assert isinstance(engine, Engine) and isinstance(engine.pool, NullPool)
    with engine.begin() as connection:
        assert connection.scalar(text("SELECT 1")) == 1
    engine.dispose()


def test_a_sync_engine_on_an_async_only_driver_is_a_one_line_error() -> None:
    environ = {"DATABASE_URL": "postgresql+asyncpg://app@db/app"}
    with pytest.raises(ConfigurationError) as raised:
        migration_engine(sync=True, environ=environ, env_file=None)
    assert str(raised.value) == ("DATABASE_URL: the driver 'postgresql+asyncpg' is async only")
