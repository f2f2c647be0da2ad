"""What an anonymous client is told of an unavailable database: its name and the reason."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from fastapi import FastAPI
from sqlalchemy import text

from pooltender import (
    Databases,
    DatabaseSettings,
    DatabaseUnavailable,
    DatabaseUnreachable,
    StatementTimeout,
)
from pooltender.errors import PoolOverloaded, PoolTimeout
from pooltender.fastapi import Session, install
from pooltender.fastapi.gate import unavailable_response
from pooltender.testing import async_client

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


async def test_the_full_message_of_a_503_is_logged_once_per_burst(
    closed_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="pooltender")
    app = FastAPI()
    install(app, metrics_path=None, stats_path=None, dashboard_path=None)

    @app.get("/one")
    async def one(session: Session) -> int:
        return int((await session.execute(text("SELECT 1"))).scalar_one())

    where = f"127.0.0.1:{closed_port}/app"
    settings = DatabaseSettings(
        url=f"postgresql+asyncpg://app@{where}", start_mode="degraded", connect_timeout=1
    )
    async with async_client(app, lambda: Databases.from_settings({"primary": settings})) as client:
        answers = [await client.get("/one") for _ in range(3)]
        ready = await client.get("/health/ready")
    assert [a.status_code for a in answers] == [503] * 3
    assert all(where not in a.text for a in [*answers, ready])
    assert ready.json()["failing"] == {"primary": "unreachable"}
    messages = [record.getMessage() for record in caplog.records]
    logged = [m for m in messages if f"at {where} is unreachable" in m]
    answered = [m for m in logged if "answering 503" in m]
    assert len(answered) == 1, logged  # the burst's first; the others are counted
    assert any(m.startswith("/health/ready: database 'primary' is not ready") for m in logged)


def test_the_readme_shows_the_bodies_anonymous_clients_get() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    for error in (PoolOverloaded("primary", DETAIL), DatabaseUnreachable("primary", DETAIL)):
        assert f'"message": "{error.public_message}"' in readme
