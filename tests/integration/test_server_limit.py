"""Each pool exports the server's usable connection slots, for the fleet budget."""

from __future__ import annotations

import psycopg
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from pooltender import Database, Databases, DatabaseSettings
from pooltender.metrics import PoolCollector

from ..conftest import MARIADB_URL, POSTGRES_URL


def postgres_usable() -> int:
    with psycopg.connect("host=127.0.0.1 port=5432 user=postgres dbname=test") as conn:
        row = conn.execute(
            "SELECT current_setting('max_connections')::int"
            " - current_setting('superuser_reserved_connections')::int"
            " - coalesce(current_setting('reserved_connections', true), '0')::int"
        ).fetchone()
    assert row is not None
    return int(row[0])


async def test_the_servers_usable_slots_are_read_at_start_and_exported() -> None:
    dbs = Databases(
        {
            "primary": Database(DatabaseSettings(url=POSTGRES_URL, pool_size=1)),
            "shop": Database(DatabaseSettings(name="shop", url=MARIADB_URL, pool_size=1)),
        }
    )
    await dbs.start()
    try:
        stats = dbs.stats().databases
        assert stats["primary"].server_connections_max == postgres_usable()
        assert (stats["shop"].server_connections_max or 0) > 0
        registry = CollectorRegistry()
        registry.register(PoolCollector(dbs))
        text = generate_latest(registry).decode()
    finally:
        await dbs.stop()
    [family] = [
        f
        for f in text_string_to_metric_families(text)
        if f.name == "pooltender_server_connections_max"
    ]
    servers = {s.labels["pool_name"]: (s.labels["server"], s.value) for s in family.samples}
    assert servers["primary"] == ("127.0.0.1:5432/test", postgres_usable())
    assert servers["shop"][0] == "127.0.0.1:3306/test"
