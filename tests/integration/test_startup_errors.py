"""Start-up errors under a real uvicorn: pooltender's one line comes before any traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

APP = """
from fastapi import FastAPI
from pooltender.fastapi import install

app = FastAPI()
install(app)
"""

PASSWORD = "t14-s3cret"


def start(tmp_path: Path, env: dict[str, str]) -> tuple[int, list[str]]:
    (tmp_path / "app14.py").write_text(APP)
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "POOLTENDER_"))}
    process = subprocess.run(
        [sys.executable, "-m", "uvicorn", "app14:app", "--port", "0"],
        cwd=tmp_path,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    return process.returncode, (process.stdout + process.stderr).splitlines()


def first_error(lines: list[str]) -> str:
    """The first line that is not uvicorn's INFO chatter."""
    return next(line for line in lines if not line.startswith("INFO:"))


def test_missing_database_url(tmp_path: Path) -> None:
    returncode, lines = start(tmp_path, {})
    assert returncode != 0
    assert first_error(lines) == "pooltender could not start: DATABASE_URL: is not set", lines
    assert any("Traceback" in line for line in lines)  # uvicorn's own follows, after


def test_unreachable_host(tmp_path: Path, closed_port: int) -> None:
    url = f"postgresql+asyncpg://postgres:{PASSWORD}@127.0.0.1:{closed_port}/test"
    returncode, lines = start(tmp_path, {"DATABASE_URL": url, "DATABASE_CONNECT_RETRIES": "0"})
    assert returncode != 0
    assert first_error(lines).startswith(
        f"pooltender could not start: database 'primary' at 127.0.0.1:{closed_port}/test is not"
        " reachable: "
    ), lines
    assert "refused" in first_error(lines).lower()
    assert not [line for line in lines if PASSWORD in line]


@pytest.mark.parametrize(
    ("variable", "value", "reason"),
    [
        ("DATABASE_POOL_SIZE", "abc", "Input should be a valid integer"),
        ("DATABASE_URL", "nonsense://x", "unknown driver 'nonsense'"),
        ("POOLTENDER_LOOP_BLOCK_THRESHOLD", "xyz", "Input should be a valid number"),
    ],
)
def test_a_bad_value(
    tmp_path: Path, postgres_url: str, variable: str, value: str, reason: str
) -> None:
    returncode, lines = start(tmp_path, {"DATABASE_URL": postgres_url, variable: value})
    assert returncode != 0
    line = first_error(lines)
    assert line.startswith(f"pooltender could not start: {variable}: {reason}"), lines
