"""CPU time of one ``503`` refusal, through ASGI in process: the admission gate vs the
request dependency (the same app with the gate taken out), side by side.

    PYTHONPATH=src python benchmarks/refusal_cost.py [--requests 2000] [--rounds 9]

A SQLite file database with one connection, held for the whole run, and no room to
wait: every ``GET /users/{id}`` is refused. Prints the median microseconds of CPU per
refusal of each variant over interleaved rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from sqlalchemy import text

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "src")]

from pooltender import Database, DatabaseSettings  # noqa: E402
from pooltender.fastapi import Session, install  # noqa: E402
from pooltender.testing import override_databases  # noqa: E402


def make_app(*, gate: bool) -> FastAPI:
    app = FastAPI()
    install(app)

    @app.get("/users/{user_id}")
    async def get_user(user_id: int, session: Session) -> dict[str, int]:
        await session.execute(text("SELECT 1"))
        return {"id": user_id}

    if not gate:
        app.user_middleware = [m for m in app.user_middleware if "AdmissionGate" not in repr(m)]
    return app


async def refuse(app: FastAPI, statuses: list[int]) -> None:
    path = "/users/7"
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"bench")],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    await app(scope, receive, send)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        settings = DatabaseSettings(
            url=f"sqlite+aiosqlite:///{Path(folder) / 'bench.sqlite'}",
            pool_size=1,
            max_overflow=0,
            max_waiting=0,
        )
        db = Database(settings)
        await db.start()
        apps = {"admission gate": make_app(gate=True), "dependency": make_app(gate=False)}
        async with contextlib.AsyncExitStack() as stack:
            for app in apps.values():  # both apps borrow the one started database
                stack.enter_context(override_databases(app, db))
                await stack.enter_async_context(app.router.lifespan_context(app))
            held = await stack.enter_async_context(db.engine.connect())
            await held.execute(text("SELECT 1"))  # the only connection, held throughout
            times: dict[str, list[float]] = {name: [] for name in apps}
            for _ in range(args.rounds):
                for name, app in apps.items():
                    statuses: list[int] = []
                    start = time.process_time()
                    for _ in range(args.requests):
                        await refuse(app, statuses)
                    times[name].append((time.process_time() - start) / args.requests * 1e6)
                    assert set(statuses) == {503}, (name, set(statuses))
        await db.stop()
    print("| refused by | CPU us per refusal (median) |")
    print("|---|---:|")
    for name, values in times.items():
        print(f"| {name} | {statistics.median(values):.1f} |")


if __name__ == "__main__":
    import logging

    logging.getLogger("pooltender").setLevel(logging.ERROR)  # one burst line per round
    asyncio.run(main())
