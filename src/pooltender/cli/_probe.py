"""What ``pooltender check`` measures on one database: server facts and timings.

Timings use one engine built by :func:`pooltender.build_engine` (the service's
own options): a *new connection* sample opens a connection, runs ``SELECT 1``
and invalidates it, so the next sample opens another; a *pooled* sample checks
a warm connection out, runs ``SELECT 1`` and returns it. Medians of each.

Each host of the URL (one, or each of a multi-host URL) is also asked its role on a
connection of its own: ``primary``, ``standby`` (in recovery), ``read-only`` (a primary
whose transactions are read-only by default: demoted in place) or ``unreachable``.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, text
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncEngine

from ..engine import build_engine, describe_error
from ..secrets import credentials
from ..settings import DatabaseSettings

__all__ = ["Probe", "ServerFacts", "probe"]

SELECT_1 = text("SELECT 1")

PG_FACTS = text(
    "SELECT current_setting('server_version'),"
    " current_setting('max_connections')::int,"
    " current_setting('superuser_reserved_connections')::int,"
    " coalesce(current_setting('reserved_connections', true), '0')::int,"
    " (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'),"
    " inet_server_port()"
)
MYSQL_FACTS = text(
    "SELECT VERSION(), @@max_connections, 0, 0,"
    " (SELECT COUNT(*) FROM information_schema.PROCESSLIST), @@port"
)
PG_BACKEND_PID = text("SELECT pg_backend_pid()")
# Connections open on the server now by anyone but this one: other clients, other
# databases, a running instance of the service itself. Asked before the probe opens any
# other connection of its own, so none of the probe's are counted.
PG_OTHERS = text(
    "SELECT count(*) FROM pg_stat_activity"
    " WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()"
)
MYSQL_OTHERS = text(
    "SELECT COUNT(*) FROM information_schema.PROCESSLIST"
    " WHERE ID <> CONNECTION_ID() AND COMMAND <> 'Daemon'"
)


@dataclass
class ServerFacts:
    version: str
    max_connections: int
    superuser_reserved: int
    reserved: int
    in_use: int
    server_port: int | None
    backend_pids: set[int] = field(default_factory=set)

    @property
    def usable(self) -> int:
        return max(0, self.max_connections - self.superuser_reserved - self.reserved)


@dataclass
class Probe:
    """The outcome for one database; ``error`` set when it could not be reached."""

    settings: DatabaseSettings
    error: str | None = None
    facts: ServerFacts | None = None
    connect: list[float] = field(default_factory=list)
    connect_query: list[float] = field(default_factory=list)
    pooled: list[float] = field(default_factory=list)
    roles: list[tuple[str, str]] = field(default_factory=list)
    """Each host of the URL and its role (PostgreSQL, MariaDB/MySQL)."""
    others_in_use: int | None = None  # connections of other clients open on the server

    @staticmethod
    def median(values: list[float]) -> float | None:
        return statistics.median(values) if values else None


async def probe(settings: DatabaseSettings, samples: int) -> Probe:
    """Measure ``settings``' database; never raises for an unreachable server."""
    result = Probe(settings)
    engine = build_engine(settings, on_connect_time=result.connect.append)
    secrets = credentials(settings.url)
    try:
        budget = settings.connect_timeout * (2 * samples + 4) + 5
        if isinstance(engine, AsyncEngine):
            await asyncio.wait_for(_measure_async(engine, result, samples), budget)
        else:
            await asyncio.wait_for(
                asyncio.to_thread(_count_then_measure, engine, result, samples), budget
            )
    except TimeoutError:
        result.error = f"timed out after {budget:g} s"
    except Exception as exc:
        cause = exc.__cause__ if exc.__cause__ is not None else exc
        result.error = describe_error(cause, secrets)
    finally:
        if isinstance(engine, AsyncEngine):
            await engine.dispose()
        else:
            await asyncio.to_thread(engine.dispose)
    if settings.driver.backend in ROLE_QUERIES:
        result.roles = list(
            await asyncio.gather(*(_role(settings, host) for host in settings.hosts))
        )
    return result


ROLE_QUERIES = {
    "postgresql": text(
        "SELECT pg_is_in_recovery(), current_setting('default_transaction_read_only') = 'on'"
    ),
    "mysql": text("SELECT 0, @@global.read_only"),
    "mariadb": text("SELECT 0, @@global.read_only"),
}


async def _role(settings: DatabaseSettings, host: str) -> tuple[str, str]:
    """``(host, role)`` of one host of ``settings``' URL, asked on a connection to it alone."""
    name, _, port = host.rpartition(":") if ":" in host else (host, "", "")
    query = {k: v for k, v in settings.url.query.items() if k not in ("host", "port")}
    query.pop("target_session_attrs", None)
    url = settings.url.set(host=name or host, port=int(port) if port else None, query=query)
    # Read-only: no failover check refuses a standby; any host answers for itself.
    single = settings.model_copy(update={"url": url, "read_only": True})
    engine = build_engine(single)
    query_role = ROLE_QUERIES[settings.driver.backend]

    def ask(connection: Connection) -> tuple[Any, ...]:
        return tuple(connection.execute(query_role).one())

    try:
        if isinstance(engine, AsyncEngine):
            async with engine.connect() as connection:
                row = await asyncio.wait_for(connection.run_sync(ask), single.connect_timeout)
        else:
            row = await asyncio.to_thread(lambda: _ask_sync(engine, ask))
    except Exception:
        return host, "unreachable"
    finally:
        if isinstance(engine, AsyncEngine):
            await engine.dispose()
        else:
            await asyncio.to_thread(engine.dispose)
    recovery, read_only = row
    if recovery:
        return host, "standby"
    return host, "read-only" if int(read_only or 0) else "primary"


def _ask_sync(engine: Engine, ask: Callable[[Connection], tuple[Any, ...]]) -> tuple[Any, ...]:
    with engine.connect() as connection:
        return ask(connection)


async def _measure_async(engine: AsyncEngine, result: Probe, samples: int) -> None:
    # The same measurement as a sync engine's, run in SQLAlchemy's greenlet (run_sync),
    # where the async engine's sync face works; the connection it runs in stays out.
    async with engine.connect() as connection:
        await connection.run_sync(lambda sync: _count_others(sync, result))
        await connection.run_sync(lambda sync: _measure_sync(sync.engine, result, samples))


def _count_then_measure(engine: Engine, result: Probe, samples: int) -> None:
    with engine.connect() as connection:
        _count_others(connection, result)
        connection.invalidate()  # the first "new connection" sample opens a new one
    _measure_sync(engine, result, samples)


def _count_others(connection: Connection, result: Probe) -> None:
    """How many connections others hold on the server, on the probe's first connection."""
    backend = connection.engine.dialect.name
    query = {"postgresql": PG_OTHERS, "mysql": MYSQL_OTHERS, "mariadb": MYSQL_OTHERS}.get(backend)
    if query is not None:
        result.others_in_use = int(connection.execute(query).scalar_one())
        connection.commit()


def _measure_sync(engine: Engine, result: Probe, samples: int) -> None:
    backend = engine.dialect.name
    for _ in range(samples):
        start = time.perf_counter()
        with engine.connect() as connection:
            connection.execute(SELECT_1)
            result.connect_query.append(time.perf_counter() - start)
            connection.invalidate()
    with engine.connect() as connection:  # warm one connection for the pooled samples
        result.facts = _facts(connection, backend)
    for _ in range(samples):
        start = time.perf_counter()
        with engine.connect() as connection:
            connection.execute(SELECT_1)
        result.pooled.append(time.perf_counter() - start)
    if result.facts is not None and backend == "postgresql":
        with engine.connect() as connection:
            # The server process behind one client connection, over three transactions:
            # more than one pid means a transaction-mode pooler (PgBouncer) in between.
            pids = set()
            for _ in range(3):
                pids.add(int(connection.execute(PG_BACKEND_PID).scalar_one()))
                connection.commit()
            result.facts.backend_pids = pids


def _facts(connection: Connection, backend: str) -> ServerFacts | None:
    query: Any = {"postgresql": PG_FACTS, "mysql": MYSQL_FACTS, "mariadb": MYSQL_FACTS}.get(backend)
    if query is None:
        return None
    row = connection.execute(query).one()
    connection.commit()
    convert: Callable[[Any], int | None] = lambda v: None if v is None else int(v)  # noqa: E731
    return ServerFacts(
        version=str(row[0]),
        max_connections=int(row[1]),
        superuser_reserved=int(row[2]),
        reserved=int(row[3]),
        in_use=int(row[4]),
        server_port=convert(row[5]),
    )
