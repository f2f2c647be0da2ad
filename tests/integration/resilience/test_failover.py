"""A real failover under load: the service leaves the demoted primary by itself.

The pair of ``scripts/pg-cluster.sh`` (a primary and its synchronous replica, on their own
ports), the ledger service (``tests/support/ledger_app.py``) under uvicorn with a
multi-host URL naming both nodes, 8 clients (half write a new id each, half read). Then
one of the two shapes of the incident:

- (a) the primary turns read-only under its open connections
  (``default_transaction_read_only``, reloaded), and the replica is promoted;
- (b) the primary stops, the replica is promoted, and the old primary comes back on its
  own address as a standby of the new one.

Asserted: no answer but 200 and 503; no write lost (answered 200, not on the new
primary) or applied twice; every write sent from ``RECOVERY_BOUND`` seconds after the
promotion on answers 200, with no restart. The same shape (a) with
``DATABASE_FAILOVER_DETECTION=false`` keeps failing writes with SQLSTATE 25006 to the
end, so the detection is what recovers the service. Each run prints its figures (the
ones in docs/resilience.md).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Literal

import httpx
import pytest
from sqlalchemy import text

from pooltender import Database, DatabaseSettings, DatabaseUnavailable
from tests.support.cluster import Cluster
from tests.support.load import Answer, Load
from tests.support.service import Service

pytestmark = pytest.mark.integration

LEDGER = "failover_ledger"
CLIENTS = 8
BEFORE = 2.0  # seconds of load before the incident
AFTER = 5.0  # seconds of load after the promotion (after the rejoin in shape (b))
RECOVERY_BOUND = 3.0
"""Seconds after the promotion from which every write must succeed (measured: < 0.1 s)."""

Shape = Literal["a", "b"]


@dataclass
class Run:
    driver: str
    shape: Shape
    detection: bool
    adopted: bool = False
    answers: list[Answer] = field(default_factory=list)
    writes: dict[uuid.UUID, int] = field(default_factory=dict)  # id -> status (0: no answer)
    incident: float = 0.0  # monotonic: the demotion (a) or the stop (b) began
    promoted: float = 0.0  # the promoted node commits writes
    output: str = ""
    ledger: dict[str, int] = field(default_factory=dict)
    failovers: int = 0
    reasons: Counter[str] = field(default_factory=Counter)  # the 503s' reasons

    def writes_answered(self) -> list[Answer]:
        return [a for a in self.answers if a.client % 2 == 0]

    def by_status(self, reads: bool) -> Counter[int]:
        return Counter(a.status for a in self.answers if (a.client % 2 == 1) == reads)

    def recovered_after(self) -> float:
        """Seconds from the promotion to the last write that did not answer 200 (0: none
        failed after the promotion)."""
        failed = [a.sent for a in self.writes_answered() if a.status != 200]
        last = max((t for t in failed if t >= self.promoted), default=self.promoted)
        return last - self.promoted

    def summary(self) -> str:
        return (
            f"failover shape ({self.shape}), {self.driver}"
            f"{' (adopted engine)' if self.adopted else ''}, detection "
            f"{'on' if self.detection else 'off'}: writes {dict(self.by_status(False))}, "
            f"reads {dict(self.by_status(True))}; slowest "
            f"{max((a.elapsed for a in self.answers), default=0.0):.2f} s; incident to promotion "
            f"{self.promoted - self.incident:.2f} s; last failed write "
            f"{self.recovered_after():.2f} s after the promotion; 503 reasons "
            f"{dict(self.reasons)}; failovers counted {self.failovers}; ledger {self.ledger}"
        )


def multi_host_url(cluster: Cluster, driver: str) -> str:
    hosts = "&".join(f"host=127.0.0.1:{p}" for p in (cluster.primary_port, cluster.replica_port))
    return f"postgresql+{driver}://postgres@/test?{hosts}"


async def failover(
    cluster: Cluster, driver: str, shape: Shape, *, detection: bool = True, adopted: bool = False
) -> Run:
    run = Run(driver, shape, detection, adopted)
    old, new = cluster.primary_port, cluster.replica_port
    with cluster.connect(old) as conn:
        conn.execute(f"CREATE TABLE {LEDGER} (id uuid NOT NULL, at timestamptz DEFAULT now())")
    env = {
        "DATABASE_FAILOVER_DETECTION": str(detection).lower(),
        "LEDGER_TABLE": LEDGER,
    }
    if adopted:  # the app's own engine and URL (pool size 4, timeouts 2 s: its own options)
        env["LEDGER_URL"] = multi_host_url(cluster, driver) + "&target_session_attrs=read-write"
    else:
        env.update(
            DATABASE_URL=multi_host_url(cluster, driver),
            DATABASE_POOL_SIZE="4",
            DATABASE_POOL_TIMEOUT="2",
            DATABASE_CONNECT_TIMEOUT="2",
        )
    app = "tests.support.ledger_adopted_app:app" if adopted else "tests.support.ledger_app:app"
    written: list[uuid.UUID] = []

    async def request(client: httpx.AsyncClient, number: int) -> httpx.Response:
        if number % 2 == 0:
            key = uuid.uuid4()
            run.writes[key] = 0
            response = await client.post("/ledger", json={"id": str(key)})
            run.writes[key] = response.status_code
            if response.status_code == 200:
                written.append(key)
        else:
            key = written[-1] if written else uuid.uuid4()
            response = await client.get(f"/ledger/{key}")
        if response.status_code == 503:
            run.reasons[response.json()["detail"]["reason"]] += 1
        return response

    with Service(env, app=app) as service:
        load = Load(service.url, clients=CLIENTS, request=request, timeout=10.0)
        stop = asyncio.Event()
        running = asyncio.create_task(load.run(stop))
        await asyncio.sleep(BEFORE)
        run.incident = time.monotonic()
        if shape == "a":
            await asyncio.to_thread(cluster.demote_in_place, old)
            await asyncio.to_thread(cluster.promote, new)
            run.promoted = time.monotonic()
        else:
            await asyncio.to_thread(cluster.stop_node, old)
            await asyncio.to_thread(cluster.promote, new)
            run.promoted = time.monotonic()
            await asyncio.to_thread(cluster.rejoin_as_standby, old)
        await asyncio.sleep(AFTER)
        stop.set()
        run.answers = await running
        async with httpx.AsyncClient(base_url=service.url, timeout=5) as client:
            stats = (await client.get("/debug/pool-stats")).json()
        run.failovers = stats["databases"]["primary"]["failovers"]
        run.output = service.output()
    run.ledger = check_ledger(cluster, run)
    print(run.summary())
    return run


def check_ledger(cluster: Cluster, run: Run) -> dict[str, int]:
    def rows(port: int) -> Counter[uuid.UUID]:
        with cluster.connect(port) as conn:
            found = conn.execute(f"SELECT id, count(*) FROM {LEDGER} GROUP BY id").fetchall()
        return Counter(dict(found))

    on_new = rows(cluster.replica_port)
    ok = {key for key, status in run.writes.items() if status == 200}
    refused = {key for key, status in run.writes.items() if status != 200}
    return {
        "answered 200": len(ok),
        "lost": len(ok - set(on_new)),
        "twice": sum(1 for n in on_new.values() if n > 1),
        "applied though refused": len(refused & set(on_new)),
    }


def assert_survived(run: Run) -> None:
    statuses = Counter(a.status for a in run.answers)
    failed = Counter(a.detail[:120] for a in run.answers if a.status not in (200, 503))
    assert set(statuses) <= {200, 503}, (statuses, failed, run.output[-3000:])
    assert run.ledger["lost"] == 0 and run.ledger["twice"] == 0, run.ledger
    # Every write from the bound on succeeded, and there were many of them.
    late = [a for a in run.writes_answered() if a.sent >= run.promoted + RECOVERY_BOUND]
    assert late and all(a.status == 200 for a in late), Counter(a.status for a in late)
    assert len(late) >= 20, len(late)
    assert run.recovered_after() < RECOVERY_BOUND
    # Writes succeeded before the incident too: the load was real throughout.
    assert any(a.status == 200 for a in run.writes_answered() if a.sent < run.incident)


@pytest.mark.parametrize("driver", ["asyncpg", "psycopg"])
async def test_shape_a_demoted_in_place_the_service_moves_to_the_new_primary(
    cluster: Cluster, driver: str
) -> None:
    run = await failover(cluster, driver, "a")
    assert_survived(run)
    # The old primary's pooled connections refused writes: detected, counted once, 503.
    assert run.failovers == 1
    assert run.reasons["failover"] >= 1, run.reasons
    assert "failover detected (SQLSTATE 25006)" in run.output
    assert f"now on 127.0.0.1:{cluster.replica_port}" in run.output


async def test_shape_a_on_an_adopted_engine_the_apps_own_sessions_move_too(
    cluster: Cluster,
) -> None:
    # The app's own create_async_engine and async_sessionmaker, adopted by install().
    run = await failover(cluster, "asyncpg", "a", adopted=True)
    assert_survived(run)
    assert run.failovers == 1
    assert run.reasons["failover"] >= 1, run.reasons
    assert "failover detected (SQLSTATE 25006)" in run.output
    assert f"now on 127.0.0.1:{cluster.replica_port}" in run.output


@pytest.mark.parametrize("driver", ["asyncpg", "psycopg"])
async def test_shape_b_stopped_then_back_as_a_standby_the_service_stays_on_the_new_primary(
    cluster: Cluster, driver: str
) -> None:
    run = await failover(cluster, driver, "b")
    assert_survived(run)
    # The old node is a standby on its address again; nothing of the service went there.
    assert cluster.role(cluster.primary_port) == "standby"


async def test_without_detection_writes_keep_failing_with_25006(cluster: Cluster) -> None:
    run = await failover(cluster, "asyncpg", "a", detection=False)
    late = [a for a in run.writes_answered() if a.sent >= run.promoted + RECOVERY_BOUND]
    # Pooled connections stay on the read-only old primary: writes fail to the end.
    assert sum(a.status == 500 for a in late) >= 5, Counter(a.status for a in late)
    assert run.output.count("read-only transaction") >= 5
    assert run.failovers == 0
    assert run.ledger["lost"] == 0 and run.ledger["twice"] == 0, run.ledger


async def writes(db: Database, count: int) -> list[str]:
    """``count`` writes one after the other: ``ok`` or the error's type and reason."""
    outcomes = []
    for _ in range(count):
        try:
            async with db.session() as session:
                await session.execute(
                    text(f"INSERT INTO {LEDGER} (id) VALUES (:id)"), {"id": uuid.uuid4()}
                )
            outcomes.append("ok")
        except DatabaseUnavailable as exc:
            outcomes.append(f"{type(exc).__name__} {exc.reason_code}")
    return outcomes


@pytest.mark.parametrize(("driver", "shape"), [("asyncpg", "a"), ("psycopg", "b")])
async def test_a_url_naming_only_the_old_primary_refuses_it_with_503_failover(
    cluster: Cluster, driver: str, shape: Shape
) -> None:
    # The URL still names the old primary (a DNS name not yet moved): after the failover
    # its address is read-only, and every request answers 503 failover, counted once.
    old, new = cluster.primary_port, cluster.replica_port
    with cluster.connect(old) as conn:
        conn.execute(f"CREATE TABLE {LEDGER} (id uuid NOT NULL, at timestamptz DEFAULT now())")
    db = Database(DatabaseSettings(url=cluster.url(old, driver), pool_size=3, connect_timeout=2))
    await db.start()
    try:
        assert await writes(db, 3) == ["ok"] * 3
        if shape == "a":
            cluster.demote_in_place(old)
            cluster.promote(new)
        else:
            cluster.stop_node(old)
            cluster.promote(new)
            cluster.rejoin_as_standby(old)
        outcomes = await writes(db, 6)
        assert outcomes == ["FailoverDetected failover"] * 6, outcomes
        assert db.stats().failovers == 1
        # Nothing of the pool is left on the old server's generation.
        assert db.failover.generation == 1
    finally:
        await db.stop()
