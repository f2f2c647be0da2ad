"""Engine options that keep a service alive through faults (no server needed)."""

from __future__ import annotations

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
