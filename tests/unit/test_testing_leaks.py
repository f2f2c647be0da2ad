"""The plugin fails a test that leaves a connection checked out, naming the site."""

from __future__ import annotations

import pytest

INI = """
[pytest]
asyncio_mode = auto
asyncio_default_fixture_loop_scope = function
"""

LEAKY = """
import pytest
from sqlalchemy import text

kept = []  # no garbage collection of the leaked connections during the run

async def test_leaky(sqlite_database):
    connection = await sqlite_database.engine.connect()
    kept.append(connection)

async def test_tidy(sqlite_database):
    async with sqlite_database.engine.connect() as connection:
        await connection.execute(text("SELECT 1"))

@pytest.mark.pooltender_allow_leaks
async def test_allowed(sqlite_database):
    kept.append(await sqlite_database.engine.connect())
"""


def test_a_leaked_connection_fails_the_test_and_names_the_site(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(test_leak=LEAKY)
    result = pytester.runpytest_subprocess()  # the entry point loads the plugin
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*the test left 1 connection checked out:*",
            "*database 'primary': connection #1 checked out at test_leak.py:7 in test_leaky*",
            "FAILED test_leak.py::test_leaky*",
        ]
    )


TWO_DATABASES = """
from pooltender import DatabaseState

made = []
kept = []

async def test_leaky_second_database(make_sqlite_database):
    made.append(await make_sqlite_database())
    analytics = await make_sqlite_database("analytics")
    made.append(analytics)
    kept.append(await analytics.engine.connect())

def test_both_were_stopped_after_the_test():
    assert [db.name for db in made] == ["primary", "analytics"]
    assert [db.state for db in made] == [DatabaseState.STOPPED] * 2
"""


def test_every_database_of_the_factory_is_leak_checked_and_stopped(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(test_two=TWO_DATABASES)
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*the test left 1 connection checked out:*",
            "*database 'analytics': connection #1 checked out at test_two.py:10"
            " in test_leaky_second_database*",
            "FAILED test_two.py::test_leaky_second_database*",
        ]
    )
    result.stdout.no_fnmatch_line("*database 'primary'*")


LEAKY_ROUTE = """
from fastapi import FastAPI
from pooltender import Databases
from pooltender.fastapi import databases, install
from pooltender.testing import async_client

kept = []
app = FastAPI()
install(app, lambda: Databases())

@app.get("/report")
async def report() -> None:
    kept.append(await databases(app).primary.engine.connect())

async def test_a_request_to_a_leaky_route(sqlite_database):
    async with async_client(app, sqlite_database) as client:
        assert (await client.get("/report")).status_code == 200
"""


def test_a_connection_leaked_by_a_route_names_the_routes_line(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(test_route=LEAKY_ROUTE)
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*the test left 1 connection checked out:*",
            "*database 'primary': connection #1 checked out at test_route.py:12 in report*",
        ]
    )
