"""Shared fixtures: where the real servers are, and a free port for refused connections."""

from __future__ import annotations

import os
import socket

import pytest

pytest_plugins = ["pytester"]

# An app's own test suite, run as that app runs it (tests/integration/test_adopt_app.py).
collect_ignore_glob = ["apps/notes_service/*"]

POSTGRES_URL = os.environ.get(
    "POOLTENDER_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)
MARIADB_URL = os.environ.get(
    "POOLTENDER_TEST_MARIADB_URL", "mysql+aiomysql://root@127.0.0.1:3306/test"
)


@pytest.fixture
def postgres_url() -> str:
    return POSTGRES_URL


@pytest.fixture
def mariadb_url() -> str:
    return MARIADB_URL


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on: connections to it are refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pytest_report_header() -> str:
    """Which versions this leg of the matrix runs (``make test`` runs two)."""
    from importlib import metadata

    names = ("sqlalchemy", "fastapi", "starlette", "asyncpg", "psycopg", "aiosqlite", "aiomysql")
    versions = []
    for name in names:
        try:
            versions.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{name} (not installed)")
    return "pooltender versions: " + ", ".join(versions)
