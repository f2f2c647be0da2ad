"""Engine options that keep a service alive through faults (no server needed)."""

from __future__ import annotations

import asyncpg
import psycopg
import pytest

from pooltender import DatabaseSettings
from pooltender.engine import COMMAND_TIMEOUT_GRACE, sqlalchemy_options

PG = "postgresql+asyncpg://app@db/app"


def test_asyncpg_statement_timeout_has_a_client_side_backstop() -> None:
    args = sqlalchemy_options(DatabaseSettings(url=PG, statement_timeout=1.5))["connect_args"]
    assert args["server_settings"] == {"statement_timeout": "1500"}
    assert args["command_timeout"] == pytest.approx(1.5 + COMMAND_TIMEOUT_GRACE)


def test_asyncpg_without_statement_timeout_has_no_command_timeout() -> None:
    assert "command_timeout" not in sqlalchemy_options(DatabaseSettings(url=PG))["connect_args"]


@pytest.mark.parametrize("driver", ["asyncpg", "psycopg"])
def test_read_only_postgres_transactions(driver: str) -> None:
    url = PG.replace("asyncpg", driver)
    options = sqlalchemy_options(DatabaseSettings(url=url, read_only=True))
    assert options["execution_options"] == {"postgresql_readonly": True}
    assert "execution_options" not in sqlalchemy_options(DatabaseSettings(url=url))


@pytest.mark.parametrize(
    ("error", "lost"),
    [
        (asyncpg.exceptions.AdminShutdownError("terminating connection"), True),
        (psycopg.errors.AdminShutdown("terminating connection"), True),
        (psycopg.errors.CannotConnectNow("the database system is shutting down"), True),
        (psycopg.errors.ConnectionFailure("connection failure"), True),
        (
            asyncpg.exceptions.InternalClientError(
                "cannot switch to state 15; another operation (2) is in progress"
            ),
            True,
        ),
        (asyncpg.exceptions.InternalClientError("something else"), False),
        (psycopg.errors.UniqueViolation("duplicate key"), False),
        (psycopg.errors.ReadOnlySqlTransaction("read-only"), False),
    ],
)
def test_a_server_shutting_the_session_down_is_a_lost_connection(
    error: BaseException, lost: bool
) -> None:
    from pooltender.engine import _is_lost

    wrapper = RuntimeError("adapted")
    wrapper.__cause__ = error
    assert _is_lost(error) is lost
    assert _is_lost(wrapper) is lost
