"""OpenTelemetry export: every instrument, read with the SDK's in-memory reader after a
real load, with the semantic-convention names, units, attributes and the snapshot's
values."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from sqlalchemy import text

from pooltender import Database, Databases, DatabaseSettings
from pooltender.fastapi import Session, databases, install
from pooltender.otel import POOL_NAME, STATE, otel_name
from pooltender.stats import counters, gauges
from pooltender.testing import async_client

EXPECTED = {
    "db.client.connection.count": "{connection}",
    "db.client.connection.max": "{connection}",
    "db.client.connection.idle.max": "{connection}",
    "db.client.connection.idle.min": "{connection}",
    "db.client.connection.pending_requests": "{request}",
    "db.client.connection.timeouts": "{timeout}",
    "db.client.connection.create_time": "s",
    "db.client.connection.wait_time": "s",
    "db.client.connection.use_time": "s",
}


def read(reader: InMemoryMetricReader) -> dict[str, Any]:
    data = reader.get_metrics_data()
    assert data is not None
    found: dict[str, Any] = {}
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            assert scope.scope.name == "pooltender"
            for metric in scope.metrics:
                found[metric.name] = metric
    return found


async def test_every_instrument_under_a_real_load(tmp_path: Path) -> None:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    app = FastAPI()
    db = Database(DatabaseSettings(url=f"sqlite+aiosqlite:///{tmp_path}/o.db", pool_size=3))
    install(app, lambda: Databases({"primary": db}), opentelemetry=provider)
    hold = asyncio.Event()
    holding_now = asyncio.Event()

    @app.get("/users/{user_id}")
    async def get_user(user_id: int, session: Session) -> dict[str, int]:
        await session.execute(text("SELECT 1"))
        return {"id": user_id}

    @app.get("/hold")
    async def held(session: Session) -> dict[str, bool]:
        await session.execute(text("SELECT 1"))
        holding_now.set()
        await hold.wait()
        return {"ok": True}

    async with async_client(app) as client:
        for i in range(20):
            assert (await client.get(f"/users/{i}")).status_code == 200
        holding = asyncio.create_task(client.get("/hold"))
        await asyncio.wait_for(holding_now.wait(), 5)
        stats = databases(app).primary.stats()
        metrics = read(reader)
        hold.set()
        assert (await holding).status_code == 200

    for name, unit in EXPECTED.items():
        assert name in metrics, name
        assert metrics[name].unit == unit, name
    declared = {otel_name(f.metadata["metric"].name) for f in (*gauges(), *counters())
                if f.metadata["metric"] is not None}  # fmt: skip
    declared.discard("pooltender.server_connections_max")  # SQLite has no server limit
    assert declared <= set(metrics)

    counts = {
        p.attributes[STATE]: p.value for p in metrics["db.client.connection.count"].data.data_points
    }
    assert counts == {"used": stats.checked_out, "idle": stats.available}
    for point in metrics["db.client.connection.count"].data.data_points:
        assert point.attributes[POOL_NAME] == "primary"
    [max_point] = metrics["db.client.connection.max"].data.data_points
    assert max_point.value == stats.max == 13
    [checkouts] = metrics["pooltender.checkouts"].data.data_points
    assert checkouts.value == stats.checkouts >= 21
    use = metrics["db.client.connection.use_time"].data.data_points
    routes = {p.attributes.get("pooltender.route"): p.count for p in use}
    assert routes["GET /users/{user_id}"] == 20
    [wait] = metrics["db.client.connection.wait_time"].data.data_points
    assert wait.count == stats.wait_time.count
    assert metrics["db.client.connection.timeouts"].data.is_monotonic
