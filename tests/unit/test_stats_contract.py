"""One typed snapshot, every view renders it: a counter declared in ``PoolStats`` reaches
the JSON document, ``/metrics``, the health line and the dashboard's list of counters."""

from __future__ import annotations

import dataclasses

from prometheus_client import CollectorRegistry, generate_latest

from pooltender import Database, Databases, DatabaseSettings, PoolStats, Snapshot
from pooltender.metrics import PoolCollector
from pooltender.stats import counters, gauges

# The per-database keys DESIGN.md promises in GET /debug/pool-stats.
CONTRACT = {
    "pool_size", "checked_out", "overflow", "total", "available", "max", "waiting",
    "timeouts", "rejected", "leaks_suspected", "wait_time", "use_time", "connect_time",
    "routes", "held",
}  # fmt: skip


async def started(tmp_path: object) -> Databases:
    dbs = Databases(
        {"primary": Database(DatabaseSettings(url=f"sqlite+aiosqlite:///{tmp_path}/s.db"))}
    )
    await dbs.start()
    return dbs


async def test_every_declared_counter_reaches_every_view(tmp_path: object) -> None:
    dbs = await started(tmp_path)
    try:
        snapshot = dbs.stats()
        document = snapshot.to_json()
        primary = document["databases"]["primary"]
        assert set(primary) >= CONTRACT
        registry = CollectorRegistry()
        registry.register(PoolCollector(dbs))
        metrics = generate_latest(registry).decode()
        line = snapshot.databases["primary"].health_line()
        for f in counters():
            assert f.name in primary, f.name
            assert f.name in document["counters"], f.name  # the dashboard's tiles
            assert f"# TYPE {f.metadata['metric'].name}_total counter" in metrics, f.name
            assert f" {f.name}=" in line, f.name
        for f in gauges():
            assert f.name in primary
            if f.metadata["metric"] is not None:
                assert f"# TYPE {f.metadata['metric'].name} gauge" in metrics, f.name
    finally:
        await dbs.stop()


async def test_the_json_document_reads_back_as_the_same_snapshot(tmp_path: object) -> None:
    dbs = await started(tmp_path)
    try:
        async with dbs.primary.session() as session:
            await session.connection()
        snapshot = dbs.stats()
    finally:
        await dbs.stop()
    again = Snapshot.from_json(snapshot.to_json())
    before, after = snapshot.databases["primary"], again.databases["primary"]
    for f in dataclasses.fields(PoolStats):
        if f.name not in ("wait_time", "use_time", "connect_time", "routes"):
            assert getattr(after, f.name) == getattr(before, f.name), f.name
    assert after.use_time.p99 == before.use_time.p99  # buckets and sums stay server-side
    assert [r.route for r in after.routes] == [r.route for r in before.routes]


def test_counts_come_from_counters_not_from_the_display_list() -> None:
    held = tuple(
        dataclasses.replace(_held(i), leak=True) for i in range(150)
    )  # more than the document lists
    stats = PoolStats(**{**_zero(), "held": held, "connections_leaking": 150})
    document = stats.to_json()
    assert len(document["held"]) == 100
    assert document["connections_leaking"] == 150


def _held(i: int):  # type: ignore[no-untyped-def]
    from pooltender.stats import HeldConnection

    return HeldConnection(id=i, route="GET /x", age=1.0, site="?", leak=False, after_response=False)


def _zero() -> dict[str, object]:
    values: dict[str, object] = {}
    for f in dataclasses.fields(PoolStats):
        kind = f.metadata.get("kind")
        if kind == "info":
            values[f.name] = "x"
        elif kind is not None:
            values[f.name] = 0
    return values


def test_the_readme_lists_every_metric_with_its_type() -> None:
    from pathlib import Path

    from pooltender.metrics import METRICS

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    for name, (kind, _, _) in METRICS.items():
        shown = f"{name}_total" if kind == "counter" else name
        assert f"| `{shown}` | {kind} |" in readme, name
