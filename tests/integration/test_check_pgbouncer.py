"""``pooltender check`` sees a PgBouncer (transaction mode) between it and PostgreSQL.

Starts Debian's ``pgbouncer`` on an ephemeral port in front of the local
PostgreSQL; fails (never skips) when the binary is missing.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pooltender.cli.app import app

pytestmark = pytest.mark.integration


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def pgbouncer_port() -> Iterator[int]:
    binary = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
    assert os.access(binary, os.X_OK), "pgbouncer missing: apt-get install pgbouncer"
    port = _free_port()
    directory = Path(tempfile.mkdtemp(prefix="t4-pgbouncer-"))
    directory.chmod(0o755)  # pgbouncer drops root for the postgres user and reads these
    (directory / "users.txt").write_text('"postgres" ""\n')
    (directory / "pgbouncer.ini").write_text(
        "[databases]\n"
        "test = host=127.0.0.1 port=5432 dbname=test\n"
        "[pgbouncer]\n"
        f"listen_addr = 127.0.0.1\nlisten_port = {port}\n"
        f"auth_type = trust\nauth_file = {directory / 'users.txt'}\n"
        "pool_mode = transaction\ndefault_pool_size = 3\nunix_socket_dir =\n"
    )
    for path in directory.iterdir():
        path.chmod(0o644)
    command = [binary, "-q", str(directory / "pgbouncer.ini")]
    if os.geteuid() == 0:
        command[1:1] = ["-u", "postgres"]
    process = subprocess.Popen(command)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                assert process.poll() is None, "pgbouncer exited at start"
                assert time.monotonic() < deadline, "pgbouncer did not listen"
                time.sleep(0.05)
        yield port
    finally:
        process.terminate()
        process.wait(10)
        shutil.rmtree(directory, ignore_errors=True)


def run(port: int, **extra: str) -> tuple[int, dict[str, object]]:
    env = {"DATABASE_URL": f"postgresql+asyncpg://postgres@127.0.0.1:{port}/test", **extra}
    result = CliRunner().invoke(app, ["check", "--samples", "3", "--json"], env=env)
    assert "Traceback" not in result.output
    return result.exit_code, json.loads(result.output)["databases"]["primary"]


def test_a_pooler_without_pgbouncer_mode_fails(pgbouncer_port: int) -> None:
    code, primary = run(pgbouncer_port)
    assert code == 1
    signs = primary["pooler_signs"]
    assert isinstance(signs, list)
    assert f"the URL's port is {pgbouncer_port} but the server listens on 5432" in signs
    failures = primary["failures"]
    assert isinstance(failures, list)
    assert any("DATABASE_PGBOUNCER is not true" in f for f in failures)


def test_pgbouncer_mode_passes(pgbouncer_port: int) -> None:
    code, primary = run(pgbouncer_port, DATABASE_PGBOUNCER="true")
    assert code == 0, primary
    assert primary["pooler_signs"]
    assert primary["failures"] == []
    assert "max_client_conn" in str(primary["budget_note"])
