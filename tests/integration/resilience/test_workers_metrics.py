"""``/metrics`` behind ``uvicorn --workers 4`` answers for every worker of the group
(``POOLTENDER_METRICS_DIR``), whichever worker takes the scrape."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.pg import PG_URL
from tests.support.service import Service

pytestmark = pytest.mark.integration

WORKERS = 4
POOL = 2


def connection_counts(text: str) -> dict[str, float]:
    """Open connections (idle + used) by worker label, from one scrape."""
    totals: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        if family.name == "db_client_connection_count":
            for sample in family.samples:
                worker = sample.labels["worker"]
                totals[worker] = totals.get(worker, 0.0) + sample.value
    return totals


async def test_every_scrape_counts_every_workers_pool(
    tmp_path: Path, admin: psycopg.Connection
) -> None:
    env = {
        "DATABASE_URL": PG_URL,
        "DATABASE_POOL_SIZE": str(POOL),
        "DATABASE_MAX_OVERFLOW": "0",
        "DATABASE_OVERFLOW_IDLE_TIMEOUT": "0",
        "POOLTENDER_METRICS_DIR": str(tmp_path / "metrics"),
        "POOLTENDER_DEBUG_TOKEN": "scrape-token",
    }
    headers = {"Authorization": "Bearer scrape-token"}
    with Service(env, workers=WORKERS, start_timeout=40) as service:
        deadline = time.monotonic() + 30
        while len(list((tmp_path / "metrics").glob("pooltender-*.json"))) < WORKERS:
            assert time.monotonic() < deadline, "not every worker published its snapshot"
            await asyncio.sleep(0.1)
        pids = {int(p.stem.split("-")[1]) for p in (tmp_path / "metrics").glob("*.json")}

        stop = asyncio.Event()

        async def load() -> None:  # the pools at work while they are counted
            async with httpx.AsyncClient(base_url=service.url, timeout=10) as client:
                while not stop.is_set():
                    assert (await client.get("/users/1")).status_code in (200, 503)

        loads = [asyncio.create_task(load()) for _ in range(3)]
        try:
            for _ in range(20):
                # A new connection each time: the kernel hands it to any worker.
                async with httpx.AsyncClient(base_url=service.url, timeout=10) as client:
                    scrape = await client.get("/metrics", headers=headers)
                assert scrape.status_code == 200
                counts = connection_counts(scrape.text)
                assert {int(w) for w in counts} == pids
                assert counts == {str(pid): POOL for pid in pids}
                assert sum(counts.values()) == WORKERS * POOL
        finally:
            stop.set()
            await asyncio.gather(*loads)
        # The server agrees: the workers hold WORKERS x POOL sessions.
        backends = admin.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'"
            " AND application_name = '' AND datname = 'test' AND pid <> pg_backend_pid()"
            " AND client_port IS NOT NULL"
        ).fetchone()
        assert backends is not None and backends[0] >= WORKERS * POOL
    # Workers that stopped withdrew their snapshots.
    assert list((tmp_path / "metrics").glob("pooltender-*.json")) == []
