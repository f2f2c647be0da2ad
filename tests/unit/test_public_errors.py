"""What an anonymous client is told of an unavailable database: its name and the reason."""

from __future__ import annotations

import json

import pytest

from pooltender import DatabaseUnavailable, DatabaseUnreachable, StatementTimeout
from pooltender.errors import PoolOverloaded, PoolTimeout
from pooltender.fastapi.gate import unavailable_response

DETAIL = "database 'primary' at 10.0.0.5:5432/app is unreachable: OSError: [Errno 113] No route"


@pytest.mark.parametrize(
    ("error_class", "reason"),
    [
        (DatabaseUnreachable, "unreachable"),
        (StatementTimeout, "statement_timeout"),
        (PoolOverloaded, "overloaded"),
        (PoolTimeout, "timeout"),
        (DatabaseUnavailable, "unavailable"),
    ],
)
def test_a_503_body_names_the_database_and_the_reason_only(
    error_class: type[DatabaseUnavailable], reason: str
) -> None:
    """The full message (host, port, driver text) is for the log, not the body."""
    error = error_class("primary", DETAIL, retry_after=3)
    response = unavailable_response(error)
    body = bytes(response.body).decode()
    detail = json.loads(body)["detail"]
    assert detail["database"] == "primary" and detail["reason"] == reason
    assert detail["message"] == error.public_message
    assert detail["message"].startswith("database 'primary' ")
    for internal in ("10.0.0.5", "5432", "Errno", "OSError", "route"):
        assert internal not in body
    assert response.headers["Retry-After"] == "3"
    assert str(error) == DETAIL  # what the log shows
