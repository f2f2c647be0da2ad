"""Fixtures of the integration tests: the real PostgreSQL, a cuttable proxy before it."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from sqlalchemy.engine import make_url

from tests.support.pg import PG_URL, admin_dsn
from tests.support.proxy import Proxy


@pytest.fixture
def admin() -> Iterator[psycopg.Connection]:
    """An autocommit connection straight to the server (not through the proxy)."""
    with psycopg.connect(admin_dsn(), autocommit=True) as connection:
        yield connection


@pytest.fixture
def proxy() -> Iterator[Proxy]:
    u = make_url(PG_URL)
    with Proxy(u.host or "127.0.0.1", u.port or 5432) as p:
        yield p


@pytest.fixture(scope="module")
def admin_module() -> Iterator[psycopg.Connection]:
    """Like ``admin``, for module-scoped fixtures."""
    with psycopg.connect(admin_dsn(), autocommit=True) as connection:
        yield connection
