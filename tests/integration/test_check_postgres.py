"""``pooltender check`` against the local PostgreSQL (127.0.0.1:5432, db ``test``)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from typer.testing import CliRunner

from pooltender.cli.app import app

pytestmark = pytest.mark.integration

URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"


@pytest.fixture(autouse=True)
def _no_dotenv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # no stray .env
    for name in ("DATABASE_URL", "DATABASE_POOL_SIZE", "DATABASE_MAX_OVERFLOW"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def usable() -> int:
    """The server's real usable slots: max_connections less the reserved ones."""
    with psycopg.connect("host=127.0.0.1 port=5432 user=postgres dbname=test") as conn:
        row = conn.execute(
            "SELECT current_setting('max_connections')::int"
            " - current_setting('superuser_reserved_connections')::int"
            " - coalesce(current_setting('reserved_connections', true), '0')::int"
        ).fetchone()
    assert row is not None
    return int(row[0])


def run(*args: str, url: str = URL, **extra: str) -> tuple[int, str]:
    env = {
        "DATABASE_URL": url,
        "DATABASE_POOL_SIZE": "5",
        "DATABASE_MAX_OVERFLOW": "10",
        "COLUMNS": "200",
        **extra,
    }
    result = CliRunner().invoke(app, ["check", "--samples", "3", *args], env=env)
    return result.exit_code, result.output


def test_reports_times_and_passes_a_small_budget(usable: int) -> None:
    code, out = run("--json")
    assert code == 0, out
    primary = json.loads(out)["databases"]["primary"]
    assert primary["reachable"] is True
    assert primary["usable_slots"] == usable
    assert primary["budget"] == 15
    assert primary["pooler_signs"] == []
    assert primary["samples"] == 3
    assert primary["connect_query_median"] > 0
    assert primary["pooled_median"] > 0
    assert primary["failures"] == []


def test_human_output_names_the_timings_and_the_budget(usable: int) -> None:
    code, out = run()
    assert code == 0, out
    assert "new connection + SELECT 1" in out
    assert "pooled checkout + SELECT 1" in out
    assert f"= 15 vs {usable} usable slots" in out
    assert "all checks passed" in out


def test_fifty_workers_overrun_the_server(usable: int) -> None:
    assert usable < 50 * 15  # a 100-connection server: 750 > 97
    code, out = run("--workers", "50")
    assert code == 1, out
    assert f"budget {50 * 15} connections exceeds the {usable} usable slots" in out


def test_the_budget_edge_is_exact(usable: int) -> None:
    fits = usable // 15
    code, out = run("--workers", str(fits), "--json")
    # Within the usable slots; other clients of this shared server may hold the rest.
    failures = json.loads(out)["databases"]["primary"]["failures"]
    assert not [f for f in failures if f"exceeds the {usable} usable slots" in f], out
    assert code == 0 or all("in use by other clients now" in f for f in failures), out
    code, out = run("--workers", str(fits + 1), "--json")
    assert code == 1
    assert json.loads(out)["databases"]["primary"]["budget"] == (fits + 1) * 15


def test_unreachable_server_fails_the_check_without_a_traceback() -> None:
    code, out = run("--json", url="postgresql+asyncpg://postgres:pw@127.0.0.1:1/test")
    assert code == 1
    report = json.loads(out)
    assert report["ok"] is False
    assert report["databases"]["primary"]["reachable"] is False
    assert "pw" not in out.replace("postgres", "")
    assert "Traceback" not in out


def test_databases_on_one_server_share_its_budget(usable: int) -> None:
    code, out = run("--json", DATABASE_ANALYTICS_URL=URL, DATABASE_ANALYTICS_POOL_SIZE="2")
    assert code == 0, out
    databases = json.loads(out)["databases"]
    assert databases["primary"]["budget"] == 15
    assert databases["analytics"]["budget"] == 12
    assert databases["primary"]["server_budget"] == 27
    workers = usable // 27 + 1  # 27 per worker: one worker more than fits
    code, out = run("--json", "--workers", str(workers), DATABASE_ANALYTICS_URL=URL,
                    DATABASE_ANALYTICS_POOL_SIZE="2")  # fmt: skip
    assert code == 1
    assert json.loads(out)["databases"]["analytics"]["failures"] == [
        f"budget {workers * 27} connections exceeds the {usable} usable slots"
    ]


def test_an_unbounded_pool_fails() -> None:
    code, out = run("--json", DATABASE_MAX_OVERFLOW="-1")
    assert code == 1
    primary = json.loads(out)["databases"]["primary"]
    assert primary["budget"] is None
    assert "unbounded" in primary["failures"][0]


def test_mariadb_reports_its_slots() -> None:
    code, out = run("--json", url="mysql+aiomysql://root@127.0.0.1:3306/test")
    assert code == 0, out
    primary = json.loads(out)["databases"]["primary"]
    assert "MariaDB" in primary["server_version"]
    assert primary["usable_slots"] == primary["max_connections"]
    assert primary["budget"] == 15
    assert "pooler_signs" not in primary


OTHERS = 12


@pytest.fixture
def other_clients() -> Iterator[None]:
    """OTHERS connections of another client, to another database of the server."""
    connections = [
        psycopg.connect("host=127.0.0.1 port=5432 user=postgres dbname=postgres")
        for _ in range(OTHERS)
    ]
    try:
        yield
    finally:
        for connection in connections:
            connection.close()


def test_connections_of_other_clients_count_against_the_budget(
    usable: int, other_clients: None
) -> None:
    # A budget that fits the usable slots, not what the other clients leave of them.
    size = usable - OTHERS + 1
    code, out = run("--json", DATABASE_POOL_SIZE=str(size), DATABASE_MAX_OVERFLOW="0")
    primary = json.loads(out)["databases"]["primary"]
    assert code == 1, out
    assert primary["others_in_use"] >= OTHERS
    assert primary["free_slots"] == usable - primary["others_in_use"]
    [failure] = primary["failures"]
    assert failure == (
        f"budget {size} connections exceeds the {primary['free_slots']} slots left free:"
        f" {primary['others_in_use']} of the {usable} usable slots are in use by other"
        " clients now"
    )

    code, out = run()  # a small budget passes, and the report says what others hold
    assert code == 0, out
    match = re.search(r"in use by others\s*│\s*(\d+) connections \(other clients, other", out)
    assert match, out
    assert int(match.group(1)) >= OTHERS
