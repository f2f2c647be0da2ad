"""The test kit as an app's own tests use it: no self-deadlock, and both async runners.

Each case runs a small test file in a pytest subprocess with a timeout: a hang fails
here (``subprocess.TimeoutExpired``) instead of hanging this run.
"""

from __future__ import annotations

import re

import pytest

pytestmark = pytest.mark.integration

# A hang would last forever; the kit's bound is 5 s, PostgreSQL start-up a second or so.
BOUND = 60

APP = """
from fastapi import FastAPI
from sqlalchemy import Column, Integer, MetaData, String, Table, insert, select
from pooltender.fastapi import Session, install

metadata = MetaData()
notes = Table("t14_notes", metadata, Column("id", Integer, primary_key=True),
              Column("body", String(50)))

app = FastAPI()
install(app)

@app.get("/notes")
async def bodies(session: Session) -> list[str]:
    return list(await session.scalars(select(notes.c.body).order_by(notes.c.id)))
"""

CONFTEST = """
import pytest
from app import metadata

@pytest.fixture
def pooltender_metadata():
    return metadata
"""

DEADLOCK = """
import time
import pytest
from sqlalchemy import insert
from pooltender import LifecycleError
from pooltender.testing import async_client
from app import app, notes

@pytest.fixture
async def seeded_session(postgres_database):
    async with postgres_database.session() as session:   # held open across the test
        await session.execute(insert(notes).values(body="seeded"))
        yield session

@pytest.mark.pooltender_allow_leaks  # the fixture holds its session until its teardown
async def test_a_session_held_open_across_a_request(postgres_database, seeded_session):
    started = time.monotonic()
    async with async_client(app, postgres_database) as client:
        with pytest.raises(LifecycleError) as caught:
            await client.get("/notes")
    print("WAITED", round(time.monotonic() - started, 1))
    print("MESSAGE", caught.value)

@pytest.fixture
async def seeded(postgres_database):
    await postgres_database.outer_connection.execute(insert(notes).values(body="seeded"))
    return postgres_database

async def test_seeded_through_the_outer_connection(seeded):
    async with async_client(app, seeded) as client:
        assert (await client.get("/notes")).json() == ["seeded"]
"""


def run(pytester: pytest.Pytester, ini: str, *args: str) -> pytest.RunResult:
    pytester.makeini(ini)
    pytester.makepyfile(app=APP, conftest=CONFTEST)
    return pytester.runpytest_subprocess("-s", *args, timeout=BOUND)


def test_a_session_held_open_while_the_app_serves_fails_within_seconds(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_deadlock=DEADLOCK)
    result = run(pytester, "[pytest]\nasyncio_mode = auto\n")
    result.assert_outcomes(passed=2)
    output = "\n".join(result.outlines)
    waited = re.search(r"WAITED (\S+)", output)
    assert waited, output
    assert float(waited.group(1)) >= 5.0, output  # the 5 s bound (a hang: TimeoutExpired)
    [message] = [line for line in result.outlines if line.startswith("MESSAGE")]
    assert "isolated database 'primary'" in message
    [line] = [n for n, text in enumerate(DEADLOCK.splitlines()) if "held open across" in text]
    assert f"held since test_deadlock.py:{line} in seeded_session" in message
    assert "db.outer_connection" in message


RUNNERS = """
import pytest
from sqlalchemy import insert
from pooltender.testing import async_client
from app import app, notes

MARK

async def test_app_and_fixture_share_the_transaction(postgres_database, sqlite_database):
    await postgres_database.outer_connection.execute(insert(notes).values(body="one"))
    async with async_client(app, postgres_database) as client:
        assert (await client.get("/notes")).json() == ["one"]
    async with sqlite_database.engine.connect():
        pass

async def test_the_factories(make_postgres_database):
    db = await make_postgres_database("analytics", metadata=None)
    async with db.session():
        pass
"""

ANYIO = """
pytestmark = pytest.mark.anyio

@pytest.fixture
def anyio_backend():
    return "asyncio"
"""


def test_the_fixtures_under_pytest_asyncio_auto_mode(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_runner=RUNNERS.replace("MARK", ""))
    result = run(pytester, "[pytest]\nasyncio_mode = auto\n")
    result.assert_outcomes(passed=2)


def test_the_fixtures_under_pytest_asyncio_strict_mode(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_runner=RUNNERS.replace("MARK", "pytestmark = pytest.mark.asyncio"))
    result = run(pytester, "[pytest]\nasyncio_mode = strict\n")
    result.assert_outcomes(passed=2)


def test_the_fixtures_under_anyio_with_pytest_asyncio_installed(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_runner=RUNNERS.replace("MARK", ANYIO))
    result = run(pytester, "[pytest]\nasyncio_mode = strict\n")
    result.assert_outcomes(passed=2)


def test_the_fixtures_under_anyio_alone(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_runner=RUNNERS.replace("MARK", ANYIO))
    result = run(pytester, "[pytest]\n", "-p", "no:asyncio")
    result.assert_outcomes(passed=2)
