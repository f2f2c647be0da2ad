"""Failover detection without a server: what counts as a demoted primary, and where it
is on; multi-host URLs. The real failover is tests/integration/resilience/test_failover.py."""

from __future__ import annotations

import asyncpg
import psycopg
import pymysql
import pytest

from pooltender import DatabaseSettings, FailoverDetected, redact_url
from pooltender.engine import writable_url
from pooltender.errors import DatabaseUnavailable
from pooltender.failover import FailoverDetector, is_read_only_error

MULTI = "postgresql+asyncpg://app:S3cr3t@/app?host=db1:5432&host=db2:5433"


class Wrapped(Exception):
    """An adapter's exception whose cause is the driver's (SQLAlchemy's asyncpg adapter)."""


def wrapped(cause: BaseException) -> Wrapped:
    error = Wrapped("wrapped")
    error.__cause__ = cause
    return error


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (psycopg.errors.ReadOnlySqlTransaction("cannot execute INSERT"), "SQLSTATE 25006"),
        (asyncpg.exceptions.ReadOnlySQLTransactionError("cannot execute INSERT"), "SQLSTATE 25006"),
        (wrapped(asyncpg.exceptions.ReadOnlySQLTransactionError("x")), "SQLSTATE 25006"),
        (
            pymysql.err.InternalError(
                1290, "The MariaDB server is running with the --read-only option so it cannot"
            ),
            "error 1290",
        ),
        # Not a read-only server: a read-only transaction the app asked for is 25006 too,
        # but other errors, and 1290 for another option, are not failovers.
        (psycopg.errors.UniqueViolation("duplicate key"), None),
        (asyncpg.exceptions.QueryCanceledError("canceling statement"), None),
        (pymysql.err.OperationalError(1290, "running with the --skip-grant-tables option"), None),
        (pymysql.err.OperationalError(2013, "Lost connection"), None),
        (ValueError("nothing"), None),
    ],
)
def test_read_only_errors(error: BaseException, code: str | None) -> None:
    assert is_read_only_error(error) == code


@pytest.mark.parametrize(
    ("url", "options", "enabled"),
    [
        ("postgresql+asyncpg://app@db/app", {}, True),
        ("postgresql+psycopg://app@db/app", {}, True),
        ("mariadb+aiomysql://app@db/app", {}, True),
        ("postgresql+asyncpg://app@db/app", {"failover_detection": False}, False),
        ("postgresql+asyncpg://app@db/app", {"read_only": True}, False),
        ("sqlite+aiosqlite:///app.db", {}, False),
    ],
)
def test_where_detection_is_on(url: str, options: dict[str, bool], enabled: bool) -> None:
    assert FailoverDetector(DatabaseSettings(url=url, **options)).enabled is enabled


def test_failover_is_a_503_reason() -> None:
    error = FailoverDetected("primary", "the server refused a write as read-only")
    assert isinstance(error, DatabaseUnavailable) and error.reason_code == "failover"


def test_a_multi_host_url_asks_for_the_writable_host() -> None:
    settings = DatabaseSettings(url=MULTI)
    assert settings.hosts == ("db1:5432", "db2:5433")
    assert settings.host == "db1:5432,db2:5433/app"
    url = writable_url(settings)
    assert url.query["target_session_attrs"] == "read-write"
    assert url.query["host"] == ("db1:5432", "db2:5433")
    # The user's own choice stands; a read-only database may use any host; one host: as is.
    chosen = DatabaseSettings(url=MULTI + "&target_session_attrs=primary")
    assert writable_url(chosen).query["target_session_attrs"] == "primary"
    replica = DatabaseSettings(name="replica", url=MULTI, read_only=True)
    assert "target_session_attrs" not in writable_url(replica).query
    single = DatabaseSettings(url="postgresql+psycopg://app@db1:5432/app")
    assert single.hosts == ("db1:5432",)
    assert "target_session_attrs" not in writable_url(single).query


def test_a_multi_host_url_is_redacted() -> None:
    url = MULTI + "&password=An0ther&sslpassword=Thi3d"
    for text in (
        redact_url(url),
        redact_url(DatabaseSettings(url=url).url),
        repr(DatabaseSettings(url=url)),
    ):
        assert "S3cr3t" not in text and "An0ther" not in text and "Thi3d" not in text, text
        assert "db1" in text and "db2" in text
