"""The real PostgreSQL of the integration tests, and helpers to look at its backends."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator

import psycopg
from sqlalchemy.engine import make_url

from .proxy import Proxy

__all__ = ["PG_URL", "admin_dsn", "backends_behind", "fresh_database", "proxied_url"]

PG_URL = os.environ.get("PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")


def admin_dsn(url: str = PG_URL) -> str:
    """A libpq DSN of ``url`` for the test's own (admin) connection."""
    u = make_url(url)
    password = f" password={u.password}" if u.password else ""
    return (
        f"host={u.host or '127.0.0.1'} port={u.port or 5432} dbname={u.database}"
        f" user={u.username or 'postgres'}{password}"
    )


def proxied_url(proxy: Proxy, url: str = PG_URL) -> str:
    """``url`` pointing at the proxy instead of the server."""
    return (
        make_url(url).set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    )


def backends_behind(admin: psycopg.Connection, proxy: Proxy) -> list[int]:
    """Server pids of the connections that pass through ``proxy``."""
    ports = sorted(proxy.upstream_ports)
    if not ports:
        return []
    rows = admin.execute(
        "SELECT pid FROM pg_stat_activity"
        " WHERE client_port = ANY(%s) AND client_addr = '127.0.0.1'",
        (ports,),
    ).fetchall()
    return [r[0] for r in rows]


@contextlib.contextmanager
def fresh_database(url: str = PG_URL, prefix: str = "t") -> Iterator[str]:
    """A new, empty database of the caller's own on the server of ``url`` (its URL, same
    driver), dropped afterwards with any connection still open to it."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_dsn(url), autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(url).set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin_dsn(url), autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
