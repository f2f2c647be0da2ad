"""What the pool monitor costs: throughput, microseconds per checkout, memory.

    PYTHONPATH=src python benchmarks/monitor_cost.py [--requests 3000] [--checkouts 1000000]
        [--rounds 3] [--stack-only]

0. In the real stack: the CPU time spent inside the monitor's checkout and check-in
   listeners per request of the FastAPI service below (monitoring on, the listeners
   timed where they run: each ``Session`` request's checkout from inside the async
   engine's greenlet, the site walk included). The steadiest figure here: it times
   only the monitor's own code.
1. Throughput: the same FastAPI service (``/users/{user_id}`` with a ``Session`` doing
   ``SELECT``, aiosqlite, 10 concurrent in-process clients), monitoring on vs off
   (``POOLTENDER_MONITOR``), alternating rounds; best and median of each.
2. Per-checkout cost: a sync SQLite engine, ``connect()``/``close()`` in a loop, monitor
   attached vs not; and the listeners alone (checkout + check-in) on a fake record.
3. Memory: the listeners driven 1,000,000 times over 1,000 distinct routes; the
   monitor's traced memory after 100,000 checkouts and after all of them.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import tempfile
import time
import tracemalloc
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import text

from pooltender import Database, Databases, DatabaseSettings, PooltenderSettings
from pooltender.engine import build_engine
from pooltender.fastapi import Session, install
from pooltender.monitor import PoolMonitor, RequestContext, current_request


def make_app(url: str, monitor: bool) -> FastAPI:
    app = FastAPI()
    options = PooltenderSettings(monitor=monitor)
    dbs = Databases({"primary": Database(DatabaseSettings(url=url), pooltender_settings=options)})
    install(app, dbs, pooltender_settings=options)

    @app.get("/users/{user_id}")
    async def get_user(user_id: int, session: Session) -> dict[str, int]:
        return {"id": (await session.execute(text("SELECT :v"), {"v": user_id})).scalar_one()}

    return app


async def throughput(url: str, monitor: bool, requests: int, concurrency: int = 10) -> float:
    app = make_app(url, monitor)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 1))
        async with httpx.AsyncClient(transport=transport, base_url="http://b") as client:
            per_worker = requests // concurrency

            async def worker(w: int) -> None:
                for i in range(per_worker):
                    response = await client.get(f"/users/{w * per_worker + i}")
                    assert response.status_code == 200

            await asyncio.gather(*(worker(w) for w in range(10)))  # warm-up
            start = time.perf_counter()
            await asyncio.gather(*(worker(w) for w in range(concurrency)))
            elapsed = time.perf_counter() - start
    return per_worker * concurrency / elapsed


async def in_stack(url: str, requests: int) -> float:
    """Microseconds per request spent in the monitor's listeners (see 0. above): the
    median checkout listener plus the median check-in listener, each call timed with
    ``perf_counter`` (a median, so a call the busy machine preempted does not count),
    less what the timing itself costs."""
    checkouts: list[float] = []
    returns: list[float] = []
    on_checkout, on_return = PoolMonitor._on_checkout, PoolMonitor._on_return
    clock = time.perf_counter

    # Compiled under a "<...>" name: the site walk skips these frames as library ones,
    # so the sites (and the walk's length) are those of an untimed run.
    namespace: dict[str, Any] = {"clock": clock, "checkouts": checkouts, "returns": returns}
    namespace.update(on_checkout=on_checkout, on_return=on_return)
    exec(
        compile(
            "def timed_checkout(self, *args):\n"
            "    start = clock()\n"
            "    on_checkout(self, *args)\n"
            "    checkouts.append(clock() - start)\n"
            "def timed_return(self, *args):\n"
            "    start = clock()\n"
            "    on_return(self, *args)\n"
            "    returns.append(clock() - start)\n",
            "<timed listeners>",
            "exec",
        ),
        namespace,
    )
    timed_checkout, timed_return = namespace["timed_checkout"], namespace["timed_return"]

    def nothing() -> None:
        pass

    calibration: list[float] = []
    for _ in range(10_000):
        start = clock()
        nothing()
        calibration.append(clock() - start)
    overhead = statistics.median(calibration)
    PoolMonitor._on_checkout = timed_checkout  # type: ignore[method-assign]
    PoolMonitor._on_return = timed_return  # type: ignore[method-assign]
    try:
        app = make_app(url, True)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 1))
            async with httpx.AsyncClient(transport=transport, base_url="http://b") as client:

                async def worker(w: int, n: int) -> None:
                    for i in range(n):
                        assert (await client.get(f"/users/{w * n + i}")).status_code == 200

                await asyncio.gather(*(worker(w, 50) for w in range(10)))  # warm-up
                checkouts.clear()
                returns.clear()
                await asyncio.gather(*(worker(w, requests // 10) for w in range(10)))
    finally:
        PoolMonitor._on_checkout = on_checkout  # type: ignore[method-assign]
        PoolMonitor._on_return = on_return  # type: ignore[method-assign]
    return (statistics.median(checkouts) + statistics.median(returns) - 2 * overhead) * 1e6


def checkout_loop(url: str, monitor: bool, n: int) -> float:
    engine = build_engine(DatabaseSettings(url=url, pool_pre_ping=False))
    watcher = PoolMonitor("bench", leak_threshold=30)
    if monitor:
        watcher.attach(engine)  # type: ignore[arg-type]
    for _ in range(100):
        engine.connect().close()  # type: ignore[union-attr]
    start = time.perf_counter()
    for _ in range(n):
        engine.connect().close()  # type: ignore[union-attr]
    elapsed = time.perf_counter() - start
    engine.dispose()  # type: ignore[union-attr]
    return elapsed / n * 1e6


class _Proxy:
    """Stands for SQLAlchemy's connection proxy (weak-referenceable)."""


def drive_listeners(monitor: PoolMonitor, n: int, contexts: list[RequestContext]) -> None:
    record, proxy = SimpleNamespace(), _Proxy()
    on_checkout, on_checkin = monitor._on_checkout, monitor._on_return
    routes = len(contexts)
    for i in range(n):
        token = current_request.set(contexts[i % routes])
        on_checkout(None, record, proxy)  # type: ignore[arg-type]
        on_checkin(None, record)  # type: ignore[arg-type]
        current_request.reset(token)


def context(i: int) -> RequestContext:
    template = f"/resource{i}/{{item_id}}"
    return RequestContext("GET", lambda: template)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--checkouts", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--throughput-only", action="store_true")
    parser.add_argument("--stack-only", action="store_true", help="only the figure of 0.")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="pooltender-bench-"))
    async_url = f"sqlite+aiosqlite:///{tmp}/bench.db"
    sync_url = f"sqlite:///{tmp}/bench-sync.db"

    stack = [asyncio.run(in_stack(async_url, args.requests)) for _ in range(args.rounds)]
    print(
        f"monitor listeners per async request, in the real stack: {min(stack):.2f} us "
        f"(rounds: {[round(x, 2) for x in stack]})"
    )
    if args.stack_only:
        return
    on, off = [], []
    for _ in range(args.rounds):
        off.append(asyncio.run(throughput(async_url, False, args.requests)))
        on.append(asyncio.run(throughput(async_url, True, args.requests)))
    print(f"throughput, monitor off: {max(off):8.0f} req/s  (rounds: {[round(x) for x in off]})")
    print(f"throughput, monitor on:  {max(on):8.0f} req/s  (rounds: {[round(x) for x in on]})")
    print(
        f"throughput ratio on/off: best {max(on) / max(off):.3f}, median "
        f"{statistics.median(on) / statistics.median(off):.3f}"
    )
    if args.throughput_only:
        return

    n = 20_000
    bare = min(checkout_loop(sync_url, False, n) for _ in range(args.rounds))
    watched = min(checkout_loop(sync_url, True, n) for _ in range(args.rounds))
    print(f"engine checkout+checkin, monitor off: {bare:6.2f} us")
    print(f"engine checkout+checkin, monitor on:  {watched:6.2f} us  (+{watched - bare:.2f} us)")

    monitor = PoolMonitor("bench", leak_threshold=30, max_routes=100)
    contexts = [context(i) for i in range(1000)]
    listeners = []
    for _ in range(args.rounds):
        start = time.perf_counter()
        drive_listeners(monitor, 100_000, contexts)
        listeners.append((time.perf_counter() - start) / 100_000 * 1e6)
    print(f"listeners alone (checkout + check-in, 1000 routes): {min(listeners):.2f} us")

    monitor = PoolMonitor("bench", leak_threshold=30, max_routes=100)
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    drive_listeners(monitor, 100_000, contexts)
    gc.collect()
    early = tracemalloc.get_traced_memory()[0] - base
    drive_listeners(monitor, args.checkouts - 100_000, contexts)
    gc.collect()
    late = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    stats = monitor.stats()
    print(
        f"monitor memory after 100,000 checkouts: {early / 1024:8.1f} KiB; after "
        f"{stats.checkouts:,}: {late / 1024:8.1f} KiB (growth {(late - early) / 1024:+.1f} KiB); "
        f"{len(stats.routes)} route rows"
    )


if __name__ == "__main__":
    main()
