"""Fault 6: money transfers under faults keep the books balanced.

Concurrent transfers run while the proxy cuts every connection (a restart), the
server terminates the pool's backends, the proxy closes every connection (FIN), then
drops every packet silently for a while. Afterwards: the total never changed, every
transfer answered 200 is recorded exactly once, and every account's balance is its
opening balance plus exactly the recorded transfers (nothing half-applied).
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Iterator

import httpx
import psycopg
import pytest

from tests.support.load import Load
from tests.support.pg import backends_behind, proxied_url
from tests.support.proxy import Proxy
from tests.support.service import Service

pytestmark = pytest.mark.integration

ACCOUNTS = 20
OPENING = 1_000


@pytest.fixture
def books(admin: psycopg.Connection) -> Iterator[tuple[str, str]]:
    suffix = uuid.uuid4().hex[:8]
    accounts, transfers = f"t5_accounts_{suffix}", f"t5_transfers_{suffix}"
    admin.execute(f"CREATE TABLE {accounts} (id int PRIMARY KEY, balance bigint NOT NULL)")
    admin.execute(
        f"CREATE TABLE {transfers} (id uuid PRIMARY KEY, source int NOT NULL,"
        " target int NOT NULL, amount int NOT NULL)"
    )
    admin.execute(
        f"INSERT INTO {accounts} SELECT g, %s FROM generate_series(1, %s) g", (OPENING, ACCOUNTS)
    )
    yield accounts, transfers
    admin.execute(f"DROP TABLE {accounts}, {transfers}")


async def test_transfers_survive_faults(
    proxy: Proxy, admin: psycopg.Connection, books: tuple[str, str]
) -> None:
    accounts, transfers = books
    sent: dict[uuid.UUID, tuple[int, int, int]] = {}
    answered: dict[uuid.UUID, int] = {}
    rng = random.Random(5)

    async def transfer(client: httpx.AsyncClient, number: int) -> httpx.Response:
        source, target = rng.sample(range(1, ACCOUNTS + 1), 2)
        key, amount = uuid.uuid4(), rng.randint(1, 50)
        sent[key] = (source, target, amount)
        answered[key] = 0
        response = await client.post(
            "/transfers",
            json={"id": str(key), "source": source, "target": target, "amount": amount},
        )
        answered[key] = response.status_code
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
    with Service(env) as service:
        load = Load(service.url, clients=8, request=transfer)
        stop = asyncio.Event()
        running = asyncio.create_task(load.run(stop))
        await asyncio.sleep(0.7)
        proxy.cut(refuse=True)  # restart: every connection reset, new ones refused
        await asyncio.sleep(1.0)
        proxy.restore()
        await asyncio.sleep(1.0)
        for pid in backends_behind(admin, proxy):  # terminate the pool's backends mid-load
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        await asyncio.sleep(1.0)
        proxy.cut(refuse=False, reset=False)  # FIN on every connection, new ones accepted
        await asyncio.sleep(1.0)
        proxy.blackhole()  # silent drop, mid-transaction for some
        await asyncio.sleep(2.5)
        proxy.restore()
        await asyncio.sleep(2.0)
        stop.set()
        await running
        output = service.output()

    statuses = load.statuses
    assert set(statuses) <= {200, 503}, (
        [a.detail for a in load.answers if a.status not in (200, 503)],
        output[-4000:],
    )
    assert statuses[200] > 50, statuses
    assert statuses[503] > 0, statuses

    total = admin.execute(f"SELECT sum(balance), count(*) FROM {accounts}").fetchone()
    assert total == (OPENING * ACCOUNTS, ACCOUNTS)
    recorded = {
        row[0]: (row[1], row[2], row[3])
        for row in admin.execute(f"SELECT id, source, target, amount FROM {transfers}")
    }
    ok = {key for key, status in answered.items() if status == 200}
    assert ok <= set(recorded)  # every 200 is in the database (the primary key: once)
    assert set(recorded) <= set(sent)
    for key, row in recorded.items():
        assert row == sent[key]
    # Each balance is the opening balance plus exactly the recorded transfers.
    expected = dict.fromkeys(range(1, ACCOUNTS + 1), OPENING)
    for source, target, amount in recorded.values():
        expected[source] -= amount
        expected[target] += amount
    balances = dict(admin.execute(f"SELECT id, balance FROM {accounts}").fetchall())
    assert balances == expected
