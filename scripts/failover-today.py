"""What a pooltender service does today in a failover of shape (a), for the record.

A real uvicorn service (tests/support/ledger_app.py) on the pair of scripts/pg-cluster.sh
runs a steady load: half the clients write (each write a new id into a ledger), half read.
Then the primary turns read-only under its open connections and the replica is promoted
(shape (a)); later the service is restarted. Printed: per second, the answers by status
for reads and writes; the errors behind the 500s (from the service's log); and the ledger
check: *lost* (answered 200, not on the new primary), *twice* (two rows for one id),
*applied though refused* (answered an error, on the new primary).

    .venv/bin/python scripts/failover-today.py                  # both drivers, both addresses
    .venv/bin/python scripts/failover-today.py --driver psycopg --address direct

Addresses: ``direct``, the service's URL names the old primary's port
(postgresql+asyncpg://postgres@127.0.0.1:5441/test), which stays a read-only primary;
``moved``, the URL names a TCP proxy whose target moves to the new primary at promotion,
as a DNS name or a virtual IP would: connections opened after that reach the new primary,
those already open stay on the old one.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import re
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx
from psycopg import errors

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.cluster import Cluster
from tests.support.load import Answer, Load
from tests.support.proxy import Proxy
from tests.support.service import Service

LEDGER = "ledger"
STATUSES = (200, 500, 503, 0)  # 0: no HTTP answer


@dataclass
class Run:
    driver: str
    address: str
    answers: list[tuple[str, Answer]] = field(default_factory=list)  # (phase, answer)
    writes: dict[uuid.UUID, int] = field(default_factory=dict)  # id -> status (0: none yet)
    switch: float = 0.0  # monotonic: the demotion began
    switched: float = 0.0  # the promoted node commits writes
    restarted: float = 0.0  # the restarted service is live
    errors: Counter[str] = field(default_factory=Counter)
    ledger: dict[str, int] = field(default_factory=dict)


def is_write(answer: Answer) -> bool:
    return answer.client % 2 == 0


async def drive(run: Run, url: str, phase: str, seconds: float, clients: int) -> None:
    """``clients`` clients on ``url`` for ``seconds``: even ones write, odd ones read."""
    rng = random.Random(phase)
    written: list[uuid.UUID] = []  # answered 200: what the readers ask for

    async def request(client: httpx.AsyncClient, number: int) -> httpx.Response:
        if number % 2 == 0:
            key = uuid.uuid4()
            run.writes[key] = 0
            response = await client.post("/ledger", json={"id": str(key)})
            run.writes[key] = response.status_code
            if response.status_code == 200:
                written.append(key)
            return response
        key = rng.choice(written[-50:]) if written else uuid.uuid4()
        return await client.get(f"/ledger/{key}")

    load = Load(url, clients=clients, request=request, timeout=10.0)
    stop = asyncio.Event()
    running = asyncio.create_task(load.run(stop))
    await asyncio.sleep(seconds)
    stop.set()
    run.answers += [(phase, a) for a in await running]


def server_errors(output: str) -> Counter[str]:
    """The driver errors in the service's tracebacks, counted by SQLSTATE, class and message."""
    found: Counter[str] = Counter()
    for line in output.splitlines():
        match = re.match(r"^(asyncpg\.exceptions|psycopg\.errors)\.(\w+): (.*)$", line)
        if match:
            module = asyncpg.exceptions if match.group(1) == "asyncpg.exceptions" else errors
            sqlstate = getattr(getattr(module, match.group(2), None), "sqlstate", None)
            found[f"{sqlstate} {match.group(2)}: {match.group(3)[:60]}"] += 1
    return found


async def measure(cluster: Cluster, driver: str, address: str, timing: argparse.Namespace) -> Run:
    run = Run(driver, address)
    old, new = cluster.primary_port, cluster.replica_port
    cluster.reset()
    with cluster.connect(old) as conn:
        conn.execute(f"CREATE TABLE {LEDGER} (id uuid NOT NULL, at timestamptz DEFAULT now())")
    proxy = Proxy("127.0.0.1", old) if address == "moved" else None
    port = proxy.start() if proxy is not None else old
    env = {
        "DATABASE_URL": cluster.url(port, driver),
        "DATABASE_POOL_SIZE": "4",
        "DATABASE_POOL_TIMEOUT": "2",
        "DATABASE_CONNECT_TIMEOUT": "2",
        "LEDGER_TABLE": LEDGER,
    }
    try:
        with Service(env, app="tests.support.ledger_app:app") as service:
            load = asyncio.create_task(
                drive(run, service.url, "failover", timing.before + timing.after, timing.clients)
            )
            await asyncio.sleep(timing.before)
            run.switch = time.monotonic()
            await asyncio.to_thread(cluster.demote_in_place, old)
            await asyncio.to_thread(cluster.promote, new)
            if proxy is not None:
                proxy.target_port = new  # the address moves: new connections reach `new`
            run.switched = time.monotonic()
            await load
            output = service.output()
        with Service(env, app="tests.support.ledger_app:app") as service:
            run.restarted = time.monotonic()
            await drive(run, service.url, "restarted", timing.restarted, timing.clients)
            output += service.output()
    finally:
        if proxy is not None:
            proxy.stop()
    run.errors = server_errors(output)
    run.ledger = check_ledger(cluster, run)
    return run


def check_ledger(cluster: Cluster, run: Run) -> dict[str, int]:
    def rows(port: int) -> Counter[uuid.UUID]:
        with cluster.connect(port) as conn:
            query = f"SELECT id, count(*) FROM {LEDGER} GROUP BY id"
            return Counter(dict(conn.execute(query).fetchall()))

    on_new, on_old = rows(cluster.replica_port), rows(cluster.primary_port)
    ok = {key for key, status in run.writes.items() if status == 200}
    refused = {key for key, status in run.writes.items() if status != 200}
    return {
        "writes sent": len(run.writes),
        "answered 200": len(ok),
        "lost": len(ok - set(on_new)),
        "twice": sum(1 for n in on_new.values() if n > 1),
        "applied though refused": len(refused & set(on_new)),
        "only on the old primary": len(set(on_old) - set(on_new)),
    }


def report(run: Run, bucket: float) -> None:
    print(f"\n== {run.driver}, address {run.address}: answers per {bucket:g} s")
    print(f"   demote+promote took {run.switched - run.switch:.2f} s; t=0 is the demotion")
    head = " ".join(f"{s or 'none':>5}" for s in STATUSES)
    print(f"   {'t (s)':>6} {'phase':<10} | reads {head} | writes {head}")
    rows: dict[tuple[str, int], tuple[Counter[int], Counter[int]]] = {}
    for phase, a in run.answers:
        start = run.switch if phase == "failover" else run.restarted
        second = int((a.sent - start) // bucket)
        reads, writes = rows.setdefault((phase, second), (Counter(), Counter()))
        (writes if is_write(a) else reads)[a.status] += 1
    for (phase, second), (reads, writes) in sorted(
        rows.items(), key=lambda item: (item[0][0] != "failover", item[0][1])
    ):
        label = f"{second * bucket:+.0f}" if phase == "failover" else f"R{second * bucket:+.0f}"
        r = " ".join(f"{reads[s]:>5}" for s in STATUSES)
        w = " ".join(f"{writes[s]:>5}" for s in STATUSES)
        print(f"   {label:>6} {phase:<10} | reads {r} | writes {w}")
    print("   R+n: n seconds after the restarted service was live. none: no HTTP answer (after")
    print("   a 500 uvicorn closes the connection; the client's next request on it fails)")
    failed = Counter(
        f"{a.status or 'none'}: {a.detail[:90]}" for _, a in run.answers if a.status != 200
    )
    print("   answers other than 200:", dict(failed.most_common(4)) or "none")
    other = Counter(a.status for _, a in run.answers if a.status not in STATUSES)
    if other:
        print(f"   other statuses: {dict(other)}")
    print("   server errors:", dict(run.errors.most_common(4)) or "none")
    print("   ledger:", run.ledger)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--driver", choices=["asyncpg", "psycopg", "both"], default="both")
    parser.add_argument("--address", choices=["direct", "moved", "both"], default="both")
    parser.add_argument("--before", type=float, default=3.0, help="seconds of load before")
    parser.add_argument("--after", type=float, default=8.0, help="seconds after the switch")
    parser.add_argument("--restarted", type=float, default=4.0, help="seconds after restart")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--bucket", type=float, default=1.0, help="seconds per table row")
    timing = parser.parse_args()
    drivers = ["asyncpg", "psycopg"] if timing.driver == "both" else [timing.driver]
    addresses = ["direct", "moved"] if timing.address == "both" else [timing.address]
    runs = []
    with Cluster() as cluster:
        for driver in drivers:
            for address in addresses:
                runs.append(await measure(cluster, driver, address, timing))
                report(runs[-1], timing.bucket)
    summary(runs)


def summary(runs: list[Run]) -> None:
    """One line per run and phase: before the switch, after it, after the restart."""
    head = " ".join(f"{s or 'none':>5}" for s in STATUSES)
    print(f"\n== summary\n   {'run':<17} {'phase':<10} | reads {head} | writes {head}")
    for run in runs:
        phases: dict[str, tuple[Counter[int], Counter[int]]] = {}
        for phase, a in run.answers:
            if phase == "failover":
                phase = "before" if a.sent < run.switch else "after"
            reads, writes = phases.setdefault(phase, (Counter(), Counter()))
            (writes if is_write(a) else reads)[a.status] += 1
        for phase in ("before", "after", "restarted"):
            reads, writes = phases.get(phase, (Counter(), Counter()))
            r = " ".join(f"{reads[s]:>5}" for s in STATUSES)
            w = " ".join(f"{writes[s]:>5}" for s in STATUSES)
            print(f"   {run.driver + ' ' + run.address:<17} {phase:<10} | reads {r} | writes {w}")


if __name__ == "__main__":
    asyncio.run(main())
