"""Services fuzzed from their OpenAPI schema: no input makes them answer 500.

Two services run for real (uvicorn): the demo (``pooltender demo``, on SQLite files)
and the test suite's own app (``tests/support/app.py``: the README's smallest example
plus a few routes, one of which writes, on PostgreSQL). Every generated request must
get an answer below 500, or 503 (the documented refusal).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import schemathesis
from hypothesis import given, settings

from pooltender_demo import create_app
from tests.support.pg import PG_URL
from tests.support.servers import serve
from tests.support.service import Service

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def service(admin_module: psycopg.Connection) -> Iterator[Service]:
    suffix = uuid.uuid4().hex[:8]
    accounts, transfers = f"t5_fz_accounts_{suffix}", f"t5_fz_transfers_{suffix}"
    admin_module.execute(f"CREATE TABLE {accounts} (id int PRIMARY KEY, balance bigint)")
    admin_module.execute(
        f"CREATE TABLE {transfers} (id uuid PRIMARY KEY, source int, target int, amount int)"
    )
    env = {"DATABASE_URL": PG_URL, "T5_ACCOUNTS": accounts, "T5_TRANSFERS": transfers}
    try:
        with Service(env) as running:
            yield running
    finally:
        admin_module.execute(f"DROP TABLE {accounts}, {transfers}")


def test_no_input_makes_a_500(service: Service) -> None:
    fuzz(service.url)


def test_no_input_makes_the_demo_answer_500(tmp_path: Path) -> None:
    with serve(create_app({"POOLTENDER_DEMO_DIR": str(tmp_path)})) as url:
        fuzz(url)


def fuzz(base_url: str) -> None:
    # Driven through hypothesis directly: schemathesis' pytest plugin does not run on
    # this pytest version.
    schema = schemathesis.openapi.from_url(base_url + "/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 5
    calls = 0

    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=15, deadline=None, database=None)
        def check(case: schemathesis.Case) -> None:
            nonlocal calls
            calls += 1
            response = case.call(base_url=base_url, timeout=10)
            assert response.status_code < 500 or response.status_code == 503, (
                f"{case.method} {case.formatted_path} -> {response.status_code}:"
                f" {response.text[:300]}"
            )

        check()
    assert calls >= len(operations)
