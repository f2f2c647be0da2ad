"""``pooltender check`` names each host of a multi-host URL and its role, on the
primary/replica pair of scripts/pg-cluster.sh."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pooltender.cli.app import app
from tests.support.cluster import Cluster

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def _no_dotenv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DATABASE_URL", raising=False)


def check(url: str, *args: str) -> tuple[int, str]:
    env = {"DATABASE_URL": url, "COLUMNS": "200"}
    result = CliRunner().invoke(app, ["check", "--samples", "2", *args], env=env)
    return result.exit_code, result.output


@pytest.mark.parametrize("driver", ["asyncpg", "psycopg"])
def test_check_shows_each_host_and_its_role(cluster: Cluster, driver: str) -> None:
    primary, replica = cluster.primary_port, cluster.replica_port
    # The standby first: new connections still go to the writable host.
    url = f"postgresql+{driver}://postgres:S3cret@/test?host=127.0.0.1:{replica}&host=127.0.0.1:{primary}"
    code, output = check(url, "--json")
    assert code == 0, output
    entry = json.loads(output)["databases"]["primary"]
    assert entry["hosts"] == [
        {"host": f"127.0.0.1:{replica}", "role": "standby"},
        {"host": f"127.0.0.1:{primary}", "role": "primary"},
    ]
    assert entry["reachable"] and "S3cret" not in output

    code, output = check(url)
    assert code == 0, output
    assert f"127.0.0.1:{replica} standby, 127.0.0.1:{primary} primary" in output
    assert "S3cret" not in output


def test_check_fails_when_no_host_is_a_primary(cluster: Cluster) -> None:
    primary, replica = cluster.primary_port, cluster.replica_port
    cluster.demote_in_place(primary)  # shape (a), before any promotion: no writable host
    url = f"postgresql+asyncpg://postgres@/test?host=127.0.0.1:{primary}&host=127.0.0.1:{replica}"
    code, output = check(url)
    assert code == 1, output
    assert f"127.0.0.1:{primary} read-only, 127.0.0.1:{replica} standby" in output
    assert "no host is a writable primary" in output
