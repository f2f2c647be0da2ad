from __future__ import annotations

from pathlib import Path

import pytest

from pooltender import (
    ConfigurationError,
    DatabaseSettings,
    DriverNotInstalled,
    load_database_settings,
)
from pooltender.engine import sqlalchemy_options
from pooltender.settings import redact_url

SECRET = "s3cr3t-pw"


def load(**env: str) -> dict[str, DatabaseSettings]:
    return load_database_settings(env, env_file=None)


def test_defaults_match_the_documented_ones() -> None:
    s = load(DATABASE_URL="postgresql+asyncpg://app@db/app")["primary"]
    assert (s.pool_size, s.max_overflow, s.pool_timeout, s.pool_recycle) == (5, 10, 30.0, 3600)
    assert s.pool_pre_ping is True
    assert s.max_connections == 15
    assert s.wait_limit == 15  # unset: as long as the pool is wide
    assert s.is_async


def test_named_databases_and_their_options() -> None:
    dbs = load(
        DATABASE_URL="postgresql+asyncpg://app@db/app",
        DATABASE_POOL_SIZE="7",
        DATABASE_ANALYTICS_URL="sqlite+aiosqlite:///a.db",
        DATABASE_ANALYTICS_POOL_SIZE="2",
        DATABASE_ANALYTICS_MAX_WAITING="0",
        DATABASE_REPORTING_READ_URL="sqlite:///r.db",
        UNRELATED="x",
        DATABASE_HOST="ignored: not an option of any database",
    )
    assert sorted(dbs) == ["analytics", "primary", "reporting_read"]
    assert dbs["primary"].pool_size == 7
    assert dbs["analytics"].pool_size == 2
    assert dbs["analytics"].wait_limit == 0
    assert dbs["reporting_read"].is_async is False


def test_only_options_the_user_set_reach_sqlalchemy() -> None:
    s = load(DATABASE_URL="postgresql+asyncpg://app@db/app", DATABASE_POOL_TIMEOUT="2")["primary"]
    options = sqlalchemy_options(s)
    assert options["pool_timeout"] == 2.0
    assert "pool_size" not in options and "max_overflow" not in options
    # the pre-ping and the recycling (3600 s by default, jittered) are pooltender's own
    # events: SQLAlchemy's own recycle is off
    assert s.pool_recycle == 3600
    assert options["pool_recycle"] == -1 and "pool_pre_ping" not in options


@pytest.mark.parametrize(
    ("variable", "value", "reason"),
    [
        ("DATABASE_POOL_SIZE", "-1", "greater than or equal to 0"),
        ("DATABASE_POOL_SIZE", "five", "valid integer"),
        ("DATABASE_MAX_OVERFLOW", "-2", "greater than or equal to -1"),
        ("DATABASE_POOL_TIMEOUT", "0", "greater than 0"),
        ("DATABASE_POOL_RECYCLE", "soon", "valid integer"),
        ("DATABASE_POOL_PRE_PING", "maybe", "valid boolean"),
        ("DATABASE_MAX_WAITING", "-5", "greater than or equal to -1"),
        ("DATABASE_LEAK_THRESHOLD", "-1", "greater than 0"),
        ("DATABASE_STATEMENT_TIMEOUT", "abc", "valid number"),
        ("DATABASE_PGBOUNCER", "yes please", "valid boolean"),
        ("DATABASE_CONNECT_TIMEOUT", "0", "greater than 0"),
        ("DATABASE_CONNECT_RETRIES", "-1", "greater than or equal to 0"),
        ("DATABASE_WARMUP", "x", "valid integer"),
        ("DATABASE_RETRY_AFTER", "0", "greater than or equal to 1"),
        ("DATABASE_ANALYTICS_POOL_SIZE", "-3", "greater than or equal to 0"),
    ],
)
def test_bad_values_name_the_variable_and_the_reason(
    variable: str, value: str, reason: str
) -> None:
    env = {
        "DATABASE_URL": f"postgresql+asyncpg://app:{SECRET}@db/app",
        "DATABASE_ANALYTICS_URL": "sqlite+aiosqlite:///a.db",
        variable: value,
    }
    with pytest.raises(ConfigurationError) as info:
        load_database_settings(env, env_file=None)
    assert info.value.variable == variable
    assert str(info.value).startswith(f"{variable}: ")
    assert reason in str(info.value)
    assert repr(value) in str(info.value)
    assert SECRET not in str(info.value)


def test_unknown_driver_lists_the_known_ones_and_hides_the_password() -> None:
    with pytest.raises(ConfigurationError) as info:
        load(DATABASE_URL=f"oracle+cx://scott:{SECRET}@db/orcl")
    message = str(info.value)
    assert message.startswith("DATABASE_URL: unknown driver 'oracle+cx'")
    assert "postgresql+asyncpg" in message
    assert SECRET not in message


def test_malformed_url_is_refused_without_echoing_it() -> None:
    with pytest.raises(ConfigurationError) as info:
        load(DATABASE_URL=f"not a url {SECRET}")
    assert info.value.variable == "DATABASE_URL"
    assert "not a database URL" in str(info.value)
    assert SECRET not in str(info.value)


def test_option_for_an_undefined_database() -> None:
    with pytest.raises(ConfigurationError) as info:
        load(DATABASE_URL="sqlite://", DATABASE_REPLICA_POOL_SIZE="3")
    assert info.value.variable == "DATABASE_REPLICA_POOL_SIZE"
    assert "DATABASE_REPLICA_URL is not set" in str(info.value)


def test_missing_driver_names_the_package_to_install() -> None:
    with pytest.raises(DriverNotInstalled) as info:
        load(DATABASE_URL=f"postgresql+psycopg2://app:{SECRET}@db/app")
    assert "pip install psycopg2-binary" in str(info.value)
    assert info.value.variable == "DATABASE_URL"


def test_bare_backend_gets_an_installed_async_driver() -> None:
    s = load(DATABASE_URL="postgresql://app@db/app")["primary"]
    assert s.engine_url.drivername == "postgresql+asyncpg"
    heroku = load(DATABASE_URL="postgres://app@db/app")["primary"]
    assert heroku.engine_url.drivername == "postgresql+asyncpg"


def test_psycopg_is_async_unless_sync_is_asked() -> None:
    s = load(DATABASE_URL="postgresql+psycopg://app@db/app")["primary"]
    assert s.is_async and s.engine_url.drivername == "postgresql+psycopg_async"
    sync = load(DATABASE_URL="postgresql+psycopg://app@db/app", DATABASE_SYNC="true")["primary"]
    assert not sync.is_async and sync.engine_url.drivername == "postgresql+psycopg"
    with pytest.raises(
        ConfigurationError, match=r"DATABASE_SYNC: the driver 'postgresql\+asyncpg'"
    ):
        load(DATABASE_URL="postgresql+asyncpg://app@db/app", DATABASE_SYNC="true")


def test_dotenv_is_read_and_the_environment_wins(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("DATABASE_URL=sqlite:///from-dotenv.db\nDATABASE_POOL_SIZE=3\n")
    s = load_database_settings({"DATABASE_POOL_SIZE": "4"}, env_file=env_file)["primary"]
    assert s.url.database == "from-dotenv.db"
    assert s.pool_size == 4


def test_password_never_in_repr_str_or_redacted_url() -> None:
    s = load(DATABASE_URL=f"postgresql+asyncpg://app:{SECRET}@db:5433/app")["primary"]
    for text in (repr(s), str(s), redact_url(s.url), s.host, redact_url(str(s.url))):
        assert SECRET not in text
    assert s.host == "db:5433/app"
    assert redact_url(f"garbage://u:{SECRET}@h/d x") == "garbage://u:***@h/d x"


def test_max_waiting_minus_one_means_unbounded() -> None:
    s = load(DATABASE_URL="sqlite:///x.db", DATABASE_MAX_WAITING="-1")["primary"]
    assert s.wait_limit is None


def test_in_memory_sqlite_is_one_connection_whatever_the_pool_size() -> None:
    s = load(DATABASE_URL="sqlite+aiosqlite://", DATABASE_POOL_SIZE="20")["primary"]
    assert s.is_sqlite_memory and s.max_connections == 1
    options = sqlalchemy_options(s)
    assert (options["pool_size"], options["max_overflow"]) == (1, 0)


def test_a_likely_typo_is_warned_with_the_nearest_name(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("WARNING", logger="pooltender")
    load(DATABASE_URL="sqlite:///x.db", DATABASE_POOL_SIZ="3", DATABASE_ANALYTICS_POOLSIZE="2")
    messages = [r.getMessage() for r in caplog.records]
    assert any(
        "DATABASE_POOL_SIZ " in m and "did you mean DATABASE_POOL_SIZE?" in m for m in messages
    )
    assert any("did you mean DATABASE_ANALYTICS_POOL_SIZE?" in m for m in messages)


def test_an_apps_own_database_variables_are_left_alone(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("WARNING", logger="pooltender")
    load(DATABASE_URL="sqlite:///x.db", DATABASE_HOST="db", DATABASE_PASSWORD="x")
    assert caplog.records == []


def test_the_primary_url_twice_with_two_values_is_an_error() -> None:
    with pytest.raises(
        ConfigurationError, match="DATABASE_PRIMARY_URL is set too, to another value"
    ):
        load(DATABASE_URL="sqlite:///a.db", DATABASE_PRIMARY_URL="sqlite:///b.db")
    same = load(DATABASE_URL="sqlite:///a.db", DATABASE_PRIMARY_URL="sqlite:///a.db")
    assert list(same) == ["primary"]


def test_a_name_that_cannot_be_a_database_is_refused() -> None:
    with pytest.raises(ConfigurationError) as caught:
        load(DATABASE_URL="sqlite:///a.db", **{"DATABASE_MY-DB_URL": "sqlite:///b.db"})
    assert caught.value.variable == "DATABASE_MY-DB_URL"


def test_pooltender_databases_chooses_which_databases_start() -> None:
    from pooltender import Databases

    environ = {
        "DATABASE_URL": "sqlite:///a.db",
        "DATABASE_TEST_URL": "postgresql+asyncpg://ci@nowhere/test",  # a CI's stray variable
        "DATABASE_ANALYTICS_URL": "sqlite:///b.db",
        "POOLTENDER_DATABASES": "primary, analytics",
    }
    assert sorted(Databases.from_env(environ, env_file=None)) == ["analytics", "primary"]
    environ["POOLTENDER_DATABASES"] = "primary,reports"
    with pytest.raises(ConfigurationError, match="names 'reports', but DATABASE_REPORTS_URL"):
        Databases.from_env(environ, env_file=None)


def test_every_discovered_database_is_listed_at_start(caplog: pytest.LogCaptureFixture) -> None:
    from pooltender import Databases

    caplog.set_level("INFO", logger="pooltender")
    environ = {"DATABASE_URL": "sqlite:///a.db", "DATABASE_TEST_URL": "sqlite:///t.db"}
    assert sorted(Databases.from_env(environ, env_file=None)) == ["primary", "test"]
    [line] = [
        r.getMessage() for r in caplog.records if "databases from the environment" in r.getMessage()
    ]
    assert "test (DATABASE_TEST_URL)" in line and "POOLTENDER_DATABASES" in line
