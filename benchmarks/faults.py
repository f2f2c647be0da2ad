"""Fault figures: run each fault against a real service and print a Markdown table.

    scripts/pgbouncer.sh   # for the PgBouncer row
    PYTHONPATH=src:. python benchmarks/faults.py [--json]

Needs the local PostgreSQL (PG_URL) and PgBouncer (PGBOUNCER_URL). The service is
``tests/support/app.py`` (the README's smallest example plus a few routes) under
uvicorn in a subprocess; a proxy (``tests/support/proxy.py``) cuts its traffic.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import time
import uuid
from dataclasses import asdict, dataclass

import httpx
import psycopg
from tests.support.load import Answer, Load
from tests.support.pg import PG_URL, admin_dsn, backends_behind, proxied_url
from tests.support.proxy import Proxy
from tests.support.service import Service

PGBOUNCER_URL = os.environ.get("PGBOUNCER_URL", "postgresql+asyncpg://postgres@127.0.0.1:6432/test")


@dataclass
class Row:
    fault: str
    setup: str
    sent: int
    statuses: dict[str, int]
    slowest: float
    recovery: float | None  # seconds from the fault's end until every answer is 200
    integrity: str = "-"


def recovery_time(answers: list[Answer], back: float) -> float:
    """Seconds from ``back`` until the last non-200 request was sent (0: none after)."""
    late = [a.sent for a in answers if a.status != 200 and a.sent >= back]
    return max(late) - back if late else 0.0


def row(fault: str, setup: str, load: Load, recovery: float | None, integrity: str = "-") -> Row:
    statuses = {str(k): v for k, v in sorted(load.statuses.items())}
    return Row(fault, setup, len(load.answers), statuses, load.slowest, recovery, integrity)


async def get_user(client: httpx.AsyncClient, number: int) -> httpx.Response:
    return await client.get(f"/users/{number}")


async def under_load(load: Load, script: object) -> None:
    stop = asyncio.Event()
    running = asyncio.create_task(load.run(stop))
    await script  # type: ignore[misc]
    stop.set()
    await running


async def restart() -> Row:
    with Proxy() as proxy:
        env = {
            "DATABASE_URL": proxied_url(proxy),
            "DATABASE_POOL_SIZE": "5",
            "DATABASE_POOL_TIMEOUT": "2",
            "DATABASE_CONNECT_TIMEOUT": "2",
        }
        with Service(env) as service:
            load = Load(service.url, clients=8, request=get_user)
            back = 0.0

            async def script() -> None:
                nonlocal back
                await asyncio.sleep(1)
                proxy.cut(refuse=True)
                await asyncio.sleep(3)
                proxy.restore()
                back = time.monotonic()
                await asyncio.sleep(4)

            await under_load(load, script())
    return row(
        "1 server restart (3 s outage)",
        "pool 5, timeout 2 s, 8 clients",
        load,
        recovery_time(load.answers, back),
    )


async def terminate() -> Row:
    with Proxy() as proxy, psycopg.connect(admin_dsn(), autocommit=True) as admin:
        env = {"DATABASE_URL": proxied_url(proxy), "DATABASE_POOL_SIZE": "5"}
        with Service(env) as service:
            load = Load(service.url, clients=4, request=get_user)
            back = 0.0

            async def script() -> None:
                nonlocal back
                await asyncio.sleep(1)
                for pid in backends_behind(admin, proxy):
                    admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
                back = time.monotonic()
                await asyncio.sleep(2)

            await under_load(load, script())
    return row(
        "2 every backend terminated", "pool 5, 4 clients", load, recovery_time(load.answers, back)
    )


async def blackhole() -> Row:
    with Proxy() as proxy:
        env = {
            "DATABASE_URL": proxied_url(proxy),
            "DATABASE_POOL_SIZE": "5",
            "DATABASE_POOL_TIMEOUT": "2",
            "DATABASE_CONNECT_TIMEOUT": "1",
            "DATABASE_STATEMENT_TIMEOUT": "1",
        }
        with Service(env) as service:
            load = Load(service.url, clients=8, request=get_user)
            back = 0.0

            async def script() -> None:
                nonlocal back
                await asyncio.sleep(1)
                proxy.blackhole()
                await asyncio.sleep(3)
                proxy.restore()
                back = time.monotonic()
                await asyncio.sleep(3)

            await under_load(load, script())
    return row(
        "3 silent network drop (3 s)",
        "pool 5, statement timeout 1 s, connect timeout 1 s, 8 clients",
        load,
        recovery_time(load.answers, back),
    )


async def overload() -> Row:
    env = {
        "DATABASE_URL": PG_URL,
        "DATABASE_POOL_SIZE": "4",
        "DATABASE_MAX_OVERFLOW": "0",
        "DATABASE_POOL_TIMEOUT": "2",
    }

    async def hold(client: httpx.AsyncClient, number: int) -> httpx.Response:
        return await client.get("/sleep", params={"seconds": 0.1})

    with Service(env) as service:
        base = Load(service.url, clients=8, request=hold)  # pool busy, no refusals
        await under_load(base, asyncio.sleep(2.5))
        capacity = base.goodput()
        burst = Load(service.url, clients=40, request=hold, pause_after_503=0.25)
        await under_load(burst, asyncio.sleep(4))
        goodput = burst.goodput()
    result = row("4 burst at 10x capacity", "pool 4, 0.1 s hold, 40 clients", burst, None)
    result.integrity = (
        f"goodput {goodput:.0f}/s = {goodput / capacity:.0%} of capacity {capacity:.0f}/s"
    )
    return result


async def disconnect() -> Row:
    env = {"DATABASE_URL": PG_URL, "DATABASE_POOL_SIZE": "3"}
    with Service(env) as service:
        async with httpx.AsyncClient(base_url=service.url, timeout=0.3) as client:
            gave_up = 0
            for outcome in await asyncio.gather(
                *(client.get("/sleep", params={"seconds": 1}) for _ in range(5)),
                return_exceptions=True,
            ):
                gave_up += isinstance(outcome, httpx.ReadTimeout)
        started = time.monotonic()
        async with httpx.AsyncClient(base_url=service.url) as client:
            while (await client.get("/_pool")).json()["checked_out"]:  # noqa: ASYNC110 - polls
                await asyncio.sleep(0.05)
        back = time.monotonic() - started
    load = Load(service.url, clients=5, request=get_user)
    load.answers = [Answer(0, 0.3, 0, i, "client gave up") for i in range(gave_up)]
    return row(
        "5 client disconnect mid-query",
        "5 clients leave a 1 s query",
        load,
        back,
        "checked_out back to 0",
    )


async def integrity() -> Row:
    suffix = uuid.uuid4().hex[:8]
    accounts, transfers = f"t5_accounts_{suffix}", f"t5_transfers_{suffix}"
    rng = random.Random(5)
    with Proxy() as proxy, psycopg.connect(admin_dsn(), autocommit=True) as admin:
        admin.execute(f"CREATE TABLE {accounts} (id int PRIMARY KEY, balance bigint NOT NULL)")
        admin.execute(
            f"CREATE TABLE {transfers} (id uuid PRIMARY KEY, source int, target int, amount int)"
        )
        admin.execute(f"INSERT INTO {accounts} SELECT g, 1000 FROM generate_series(1, 20) g")
        ok: set[str] = set()

        async def transfer(client: httpx.AsyncClient, number: int) -> httpx.Response:
            source, target = rng.sample(range(1, 21), 2)
            key = str(uuid.uuid4())
            body = {"id": key, "source": source, "target": target, "amount": rng.randint(1, 50)}
            response = await client.post("/transfers", json=body)
            if response.status_code == 200:
                ok.add(key)
            return response

        env = {
            "DATABASE_URL": proxied_url(proxy),
            "DATABASE_POOL_SIZE": "4",
            "DATABASE_POOL_TIMEOUT": "2",
            "DATABASE_CONNECT_TIMEOUT": "1",
            "DATABASE_STATEMENT_TIMEOUT": "1",
            "T5_ACCOUNTS": accounts,
            "T5_TRANSFERS": transfers,
        }
        try:
            with Service(env) as service:
                load = Load(service.url, clients=8, request=transfer)
                back = 0.0

                async def script() -> None:
                    nonlocal back
                    await asyncio.sleep(0.7)
                    proxy.cut(refuse=True)
                    await asyncio.sleep(1)
                    proxy.restore()
                    await asyncio.sleep(1)
                    for pid in backends_behind(admin, proxy):
                        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
                    await asyncio.sleep(1)
                    proxy.cut(refuse=False, reset=False)
                    await asyncio.sleep(1)
                    proxy.blackhole()
                    await asyncio.sleep(2.5)
                    proxy.restore()
                    back = time.monotonic()
                    await asyncio.sleep(3)

                await under_load(load, script())
            total = admin.execute(f"SELECT sum(balance) FROM {accounts}").fetchone()
            rows = {str(r[0]) for r in admin.execute(f"SELECT id FROM {transfers}")}
        finally:
            admin.execute(f"DROP TABLE IF EXISTS {accounts}, {transfers}")
    verdict = (
        f"{len(rows)} transfers + 20 accounts checked: total "
        f"{'unchanged' if total == (20_000,) else 'CHANGED'}, "
        f"{len(ok - rows)} answered-200 missing"
    )
    return row(
        "6 transfers through faults 1+2+3",
        "pool 4, 8 clients",
        load,
        recovery_time(load.answers, back),
        verdict,
    )


async def pgbouncer(driver: str) -> Row:
    env = {
        "DATABASE_URL": PGBOUNCER_URL.replace("+asyncpg", f"+{driver}"),
        "DATABASE_PGBOUNCER": "true",
        "DATABASE_POOL_SIZE": "10",
    }
    with Service(env) as service:
        load = Load(service.url, clients=40, request=get_user, total=200)
        await load.run(asyncio.Event())
    return row(f"PgBouncer, {driver}", "transaction mode, 2 server conns, 40 clients", load, None)


def table(rows: list[Row]) -> str:
    lines = [
        "| fault | setup | requests | answers by status | slowest | full recovery after"
        " | checked |",
        "|---|---|---:|---|---:|---:|---|",
    ]
    for r in rows:
        statuses = ", ".join(f"{k}: {v}" for k, v in r.statuses.items())
        recovery = "-" if r.recovery is None else f"{r.recovery:.2f} s"
        lines.append(
            f"| {r.fault} | {r.setup} | {r.sent} | {statuses} | {r.slowest:.2f} s "
            f"| {recovery} | {r.integrity} |"
        )
    return "\n".join(lines)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print JSON instead of Markdown")
    args = parser.parse_args()
    rows = [
        await restart(),
        await terminate(),
        await blackhole(),
        await overload(),
        await disconnect(),
        await integrity(),
        await pgbouncer("asyncpg"),
        await pgbouncer("psycopg"),
    ]
    print(json.dumps([asdict(r) for r in rows], indent=2) if args.json else table(rows))


if __name__ == "__main__":
    asyncio.run(main())
