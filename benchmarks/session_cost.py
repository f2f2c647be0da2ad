"""Where a pooltender ``Session`` read spends its CPU, next to the seed-style session.

    PYTHONPATH=src python benchmarks/session_cost.py [--reads 1000] [--rounds 11]

In process, one caller, PostgreSQL (``BENCH_DATABASE_URL``), the read of the HTTP
benchmark (one row by primary key). Each variant adds one thing to the one before;
the table gives the median CPU time (user + system of this process) per read over
interleaved rounds, and the step from the row above:

1. seed-style: ``async_sessionmaker``, the session closed (``ROLLBACK``)
2. seed-style committing: ``COMMIT`` instead
3. pooltender ``Database.session()``: no pre-ping, monitor off
4. with the pool monitor
5. with the pre-ping (pooltender's defaults)
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "src")]

from benchmarks.apps import URL, by_id, metadata  # noqa: E402
from pooltender import Database, DatabaseSettings, PooltenderSettings  # noqa: E402


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reads", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=11)
    args = parser.parse_args()

    seed_engine = create_async_engine(URL, pool_size=5)
    async with seed_engine.begin() as connection:
        await connection.run_sync(metadata.create_all)
        await connection.execute(
            text(
                "INSERT INTO pooltender_bench_users (id, name) "
                "SELECT g, 'user ' || g FROM generate_series(1, 10) g ON CONFLICT DO NOTHING"
            )
        )
    seed_sessions = async_sessionmaker(seed_engine, expire_on_commit=False)
    monitor_off = PooltenderSettings(monitor=False)
    bare = Database(DatabaseSettings(url=URL, pool_pre_ping=False), pooltender_settings=monitor_off)
    monitored = Database(DatabaseSettings(url=URL, pool_pre_ping=False))
    defaults = Database(DatabaseSettings(url=URL))
    for db in (bare, monitored, defaults):
        await db.start()

    async def seed() -> None:
        async with seed_sessions() as session:
            (await session.execute(by_id(7))).one()

    async def seed_commit() -> None:
        async with seed_sessions() as session:
            (await session.execute(by_id(7))).one()
            await session.commit()

    def pooltender(db: Database) -> Callable[[], Awaitable[None]]:
        async def read() -> None:
            async with db.session() as session:
                (await session.execute(by_id(7))).one()

        return read

    variants: dict[str, Callable[[], Awaitable[None]]] = {
        "seed-style session (ROLLBACK)": seed,
        "seed-style, COMMIT": seed_commit,
        "Database.session(), no pre-ping, monitor off": pooltender(bare),
        "+ pool monitor": pooltender(monitored),
        "+ pre-ping (pooltender's defaults)": pooltender(defaults),
    }
    times: dict[str, list[float]] = {name: [] for name in variants}
    try:
        for read in variants.values():
            for _ in range(100):
                await read()
        for _ in range(args.rounds):
            for name, read in variants.items():
                start = time.process_time()
                for _ in range(args.reads):
                    await read()
                times[name].append((time.process_time() - start) / args.reads * 1e6)
    finally:
        for db in (bare, monitored, defaults):
            await db.stop()
        await seed_engine.dispose()

    print("| variant | CPU us per read (median) | step |")
    print("|---|---:|---:|")
    previous: float | None = None
    for name, values in times.items():
        median = statistics.median(values)
        step = "" if previous is None else f"{median - previous:+.0f}"
        print(f"| {name} | {median:.0f} | {step} |")
        previous = median


if __name__ == "__main__":
    asyncio.run(main())
