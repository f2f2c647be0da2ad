"""URLs and options that passed validation and then crashed or leaked: refused at start,
one line naming the variable, no part of a password in it."""

from __future__ import annotations

import pytest

from pooltender import ConfigurationError, DatabaseSettings, load_database_settings
from pooltender.engine import describe_error


def refused(environ: dict[str, str]) -> ConfigurationError:
    with pytest.raises(ConfigurationError) as caught:
        load_database_settings(environ, env_file=None)
    assert "\n" not in str(caught.value)
    return caught.value


@pytest.mark.parametrize(
    "url",
    [
        "postgresql+asyncpg://postgres:hunter2@x@db:5432/app",
        "postgresql+asyncpg://postgres:hunter2@@db/app",
        "mysql+aiomysql://root:hun:ter2@x@db/app",
    ],
)
def test_an_unencoded_at_in_the_password_is_refused(url: str) -> None:
    """SQLAlchemy ends the password at the first '@': the rest became the host, printed
    everywhere and looked up in DNS."""
    error = refused({"DATABASE_URL": url})
    assert error.variable == "DATABASE_URL"
    assert "percent-encoded as %40" in error.reason
    for piece in ("hunter2", "hun", "ter2", "x@db"):
        assert piece not in str(error)
    # Built directly, the same refusal; pydantic's message does not quote the input either.
    with pytest.raises(ValueError, match="percent-encoded") as direct:
        DatabaseSettings(url=url)
    assert "hunter2" not in str(direct.value) and "ter2" not in str(direct.value)


def test_the_percent_encoded_password_is_accepted() -> None:
    settings = load_database_settings(
        {"DATABASE_URL": "postgresql+asyncpg://postgres:hunter2%40x@db:5432/app"}, env_file=None
    )["primary"]
    assert settings.url.password == "hunter2@x" and settings.url.host == "db"


@pytest.mark.parametrize(
    ("url", "named"),
    [
        ("postgresql+asyncpg://app@db/app?prepared_statement_cache_size=abc", "prepared_statement"),
        ("mysql+aiomysql://app@db/app?connect_timeout=soon", "connect_timeout=soon"),
        ("sqlite+aiosqlite:///x.db?timeout=long", "timeout=long"),
        ("mysql+aiomysql://app@db/app?ssl_check_hostname=maybe", "ssl_check_hostname=maybe"),
        # SQLAlchemy's own ArgumentError, raised by the dialect: one line too.
        ("postgresql+asyncpg://app@db/app?host=h1&host=h2", "All ports are required"),
    ],
)
def test_a_query_option_of_the_wrong_type_is_refused(url: str, named: str) -> None:
    """asyncpg's dialect converted it at the first connection: a ValueError mid-start."""
    error = refused({"DATABASE_URL": url, "DATABASE_ANALYTICS_URL": url})
    assert error.variable == "DATABASE_ANALYTICS_URL"
    assert named in error.reason and "is not valid for" in error.reason


def test_a_query_option_error_never_shows_a_credential() -> None:
    error = refused(
        {"DATABASE_URL": "mysql+aiomysql://app@db/app?connect_timeout=abc&password=S3cret"}
    )
    assert "connect_timeout=abc" in error.reason
    assert "S3cret" not in str(error)


def test_good_query_options_pass() -> None:
    url = "postgresql+asyncpg://app@db/app?prepared_statement_cache_size=0&password=x"
    assert load_database_settings({"DATABASE_URL": url}, env_file=None)["primary"].url.query


def test_a_port_that_is_not_a_number_is_one_line() -> None:
    error = refused({"DATABASE_URL": "postgresql+asyncpg://app:S3cret@db:fivefour/app"})
    assert error.reason == "has a port that is not a number"


@pytest.mark.parametrize("url", ["sqlite:///x.db", "postgresql+psycopg2://app@db/app"])
def test_an_async_engine_of_a_sync_only_driver_is_refused(url: str) -> None:
    """Was SQLAlchemy's raw ArgumentError (pysqlite is not async) at start."""
    error = refused({"DATABASE_URL": url, "DATABASE_SYNC": "false"})
    assert error.variable == "DATABASE_SYNC"
    assert "is sync only" in error.reason


def test_a_character_the_driver_cannot_encode_is_not_named() -> None:
    try:
        "pa€ss".encode("latin-1")
    except UnicodeEncodeError as exc:
        shown = describe_error(exc)
    assert "€" not in shown and "\\u20ac" not in shown and "position" not in shown
    assert shown.startswith("UnicodeEncodeError: the driver cannot send a character")
