"""pooltender benchmarks, every comparison side by side in one run.

    PYTHONPATH=src python benchmarks/run.py [--duration 10] [--only connect,http,overload]

Prints Markdown tables and writes ``benchmarks/results.json``. Needs PostgreSQL
(``BENCH_DATABASE_URL``, default ``postgresql+asyncpg://postgres@127.0.0.1:5432/test``)
and ``wrk`` (``scripts/install-wrk.sh``). Each app is a real uvicorn server
(1 worker) on an ephemeral port, started and stopped in turn: by default with uvloop
and httptools, as ``uvicorn[standard]`` (and ``fastapi[standard]``) run in production,
and with the pure-Python asyncio loop and h11 (``--server plain``); ``--server both``
(the default) runs the two in the same run, rounds interleaved (``--rounds``).

1. connect: a new connection + ``SELECT 1`` vs a pooled checkout + ``SELECT 1``.
2. http: ``GET /users/{id}`` under ``wrk``: seed-style app, pooltender ``Session``,
   ``Connection``, ``ReadConnection``, ``NullPool``, raw asyncpg pool; beside each
   throughput, the server's CPU per request and the round trips per request to
   PostgreSQL (counted apart, through a proxy that reads the protocol:
   ``tests/support/proxy.py``).
3. overload: 200 clients on a 100 ms query, pool 5: seed-style vs pooltender.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from sqlalchemy import insert, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "src")]

from tests.support.proxy import Proxy  # noqa: E402

from benchmarks.apps import URL, metadata, users  # noqa: E402
from pooltender import Database, DatabaseSettings  # noqa: E402

WINDOW = {"DATABASE_PRE_PING_WINDOW": "0.5"}
HTTP_APPS: dict[str, tuple[str, dict[str, str]]] = {
    "seed-style (async_sessionmaker)": ("seed", {}),
    "pooltender Session": ("pooltender", {}),
    "pooltender Session, pre-ping window 0.5 s": ("pooltender", WINDOW),
    "pooltender Session, window, monitor off": (
        "pooltender",
        {**WINDOW, "POOLTENDER_MONITOR": "false"},
    ),
    "pooltender Session, cancel_abandoned=True": (
        "pooltender",
        {"BENCH_CANCEL_ABANDONED": "true"},
    ),
    "pooltender Connection": ("connection", {}),
    "pooltender ReadConnection": ("readonly", {}),
    "pooltender ReadConnection, pre-ping window 0.5 s": ("readonly", WINDOW),
    "pooltender ReadConnection, cancel_abandoned=True": (
        "readonly",
        {"BENCH_CANCEL_ABANDONED": "true"},
    ),
    "NullPool": ("nullpool", {}),
    "raw asyncpg pool (ceiling)": ("asyncpg", {}),
}
SERVER_LABELS = {
    "standard": "uvicorn with uvloop + httptools",
    "plain": "uvicorn with asyncio + h11",
}
SERVER_OPTIONS = {
    "standard": ["--loop", "uvloop", "--http", "httptools"],
    "plain": ["--loop", "asyncio", "--http", "h11"],
}
OVERLOAD_ENV = {
    "DATABASE_POOL_SIZE": "5",
    "DATABASE_MAX_OVERFLOW": "0",
    "DATABASE_MAX_WAITING": "5",
    "DATABASE_POOL_TIMEOUT": "0.5",
}


# -- 1. connect vs pooled checkout ----------------------------------------------------


async def connect_vs_pooled(rounds: int) -> dict[str, Any]:
    fresh = create_async_engine(URL, poolclass=NullPool)
    pooled = Database(DatabaseSettings(url=URL, pool_size=1, warmup=1))
    await pooled.start()
    times: dict[str, list[float]] = {"new connection": [], "pooled checkout": []}
    try:
        for _ in range(rounds):  # interleaved, so both see the same noise
            start = time.perf_counter()
            async with fresh.connect() as connection:
                await connection.execute(text("SELECT 1"))
            times["new connection"].append(time.perf_counter() - start)
            start = time.perf_counter()
            async with pooled.read_connection() as connection:
                await connection.execute(text("SELECT 1"))
            times["pooled checkout"].append(time.perf_counter() - start)
    finally:
        await fresh.dispose()
        await pooled.stop()
    medians = {name: statistics.median(v) for name, v in times.items()}
    return {
        "rounds": rounds,
        "median_seconds": medians,
        "ratio": medians["new connection"] / medians["pooled checkout"],
    }


# -- per-request database cost, in process --------------------------------------------


async def request_paths(rounds: int, batches: int = 7) -> dict[str, float]:
    """Median microseconds of one request's database work, no HTTP: the read of the
    HTTP scenario through each dependency's code path, batches interleaved."""
    from sqlalchemy.ext.asyncio import async_sessionmaker

    from benchmarks.apps import by_id

    seed_engine = create_async_engine(URL, pool_size=5)
    seed_sessions = async_sessionmaker(seed_engine, expire_on_commit=False)
    db = Database(DatabaseSettings(url=URL, warmup=1))
    await db.start()

    async def seed() -> None:
        async with seed_sessions() as session:
            (await session.execute(by_id(7))).one()

    async def session() -> None:
        async with db.session() as s:
            (await s.execute(by_id(7))).one()

    async def connection() -> None:
        async with db.connection() as c:
            (await c.execute(by_id(7))).one()

    async def read_connection() -> None:
        async with db.read_connection() as c:
            (await c.execute(by_id(7))).one()

    paths = {
        "seed-style session": seed,
        "pooltender Session": session,
        "pooltender Connection": connection,
        "pooltender ReadConnection": read_connection,
    }
    times: dict[str, list[float]] = {name: [] for name in paths}
    try:
        for _ in range(batches):
            for name, path in paths.items():
                start = time.perf_counter()
                for _ in range(rounds):
                    await path()
                times[name].append((time.perf_counter() - start) / rounds * 1e6)
    finally:
        await db.stop()
        await seed_engine.dispose()
    return {name: statistics.median(v) for name, v in times.items()}


# -- servers ----------------------------------------------------------------------------


class Server:
    """``uvicorn benchmarks.apps:create_app`` on an ephemeral port, 1 worker."""

    def __init__(self, app: str, env: dict[str, str] | None, server: str) -> None:
        self.app = app
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(2048)
        self.port = self.sock.getsockname()[1]
        fd = self.sock.fileno()
        os.set_inheritable(fd, True)
        full_env = {
            **os.environ,
            "BENCH_APP": app,
            "DATABASE_URL": URL,
            "BENCH_DATABASE_URL": URL,
            "PYTHONPATH": f"{ROOT}:{ROOT / 'src'}",
            **(env or {}),
        }
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.support.uvicorn_fd",  # uvicorn, TCP_NODELAY on the inherited socket
                "--factory",
                "benchmarks.apps:create_app",
                "--fd",
                str(fd),
                *SERVER_OPTIONS[server],
                "--no-access-log",
                "--log-level",
                "warning",
            ],
            pass_fds=(fd,),
            env=full_env,
            cwd=ROOT,
        )

    def __enter__(self) -> Server:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/users/1", timeout=2):
                    return self
            except Exception:
                if self.process.poll() is not None:
                    raise RuntimeError(f"server {self.app} exited") from None
                time.sleep(0.2)
        raise RuntimeError(f"server {self.app} did not answer")

    def cpu_seconds(self) -> float:
        """CPU time the server process used so far (user + system): per request, a
        steadier figure than throughput on a machine the load generator shares."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def __exit__(self, *exc: object) -> None:
        self.process.terminate()
        self.process.wait(30)
        self.sock.close()


# -- 2./3. throughput --------------------------------------------------------------------


def wrk(port: int, path: str, duration: float, connections: int) -> dict[str, Any]:
    out = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{duration:g}s",
            "--latency",
            f"http://127.0.0.1:{port}{path}",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    result: dict[str, Any] = {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1]),
        "requests": int(re.search(r"(\d+) requests in", out)[1]),
    }
    for q, value, unit in re.findall(r"\s(50|90|99)%\s+([\d.]+)(us|ms|s)\b", out):
        result[f"p{q}_ms"] = float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    result["non_2xx"] = int(bad[1]) if bad else 0
    result["socket_errors"] = errors[1] if errors else None
    return result


def http_throughput(
    duration: float, connections: int, servers: list[str], rounds: int
) -> dict[str, Any]:
    """Each app on each server, ``rounds`` times, interleaved; medians per app and server,
    and each round's ratio to the seed-style app of the same round and server."""
    samples: dict[str, dict[str, list[dict[str, Any]]]] = {
        server: {app: [] for app in HTTP_APPS} for server in servers
    }
    for round_ in range(rounds):
        for server_kind in servers:
            for app, (kind, env) in HTTP_APPS.items():
                with Server(kind, env, server_kind) as server:
                    wrk(server.port, "/users/7", 2, connections)  # warm-up
                    cpu_before = server.cpu_seconds()
                    result = wrk(server.port, "/users/7", duration, connections)
                    served = result["requests"]
                    cpu = server.cpu_seconds() - cpu_before
                    result["cpu_us_per_request"] = cpu / served * 1e6 if served else None
                samples[server_kind][app].append(result)
                print(
                    f"  round {round_ + 1} {server_kind} {app}: {result['rps']:.0f} req/s",
                    file=sys.stderr,
                )
    results: dict[str, Any] = {}
    for server_kind, apps in samples.items():
        seed = apps[next(iter(HTTP_APPS))]
        table = {}
        for app, runs in apps.items():
            row = {k: statistics.median(r[k] for r in runs) for k in ("rps", "p50_ms", "p99_ms")}
            row["cpu_us_per_request"] = statistics.median(
                r["cpu_us_per_request"] or 0 for r in runs
            )
            row["non_2xx"] = sum(r["non_2xx"] for r in runs)
            row["rps_ratios"] = [r["rps"] / s["rps"] for r, s in zip(runs, seed, strict=True)]
            row["cpu_ratios"] = [
                (s["cpu_us_per_request"] or 0) / (r["cpu_us_per_request"] or 1)
                for r, s in zip(runs, seed, strict=True)
            ]
            table[app] = row
        results[server_kind] = table
    return results


def round_trips(requests: int = 100) -> dict[str, float]:
    """Round trips to PostgreSQL per ``GET /users/{id}``, each app through a proxy that
    counts the server's ReadyForQuery messages (TLS off so it can read them)."""
    figures = {}
    for app, (kind, env) in HTTP_APPS.items():
        with Proxy() as proxy:
            url = (
                make_url(URL)
                .set(host="127.0.0.1", port=proxy.port)
                .update_query_dict({"ssl": "disable"})
                .render_as_string(hide_password=False)
            )
            overrides = {**env, "DATABASE_URL": url, "BENCH_DATABASE_URL": url}
            with Server(kind, overrides, "standard") as server:
                for _ in range(10):
                    urllib.request.urlopen(f"http://127.0.0.1:{server.port}/users/7").read()
                time.sleep(0.3)
                proxy.reset_counts()
                for _ in range(requests):
                    urllib.request.urlopen(f"http://127.0.0.1:{server.port}/users/7").read()
                time.sleep(0.3)  # a session closed after its response
                figures[app] = (proxy.round_trips - proxy.connections_accepted) / requests
    return figures


# -- 4. overload -------------------------------------------------------------------------


def loadgen(port: int, duration: float, clients: int, honor: bool) -> dict[str, Any]:
    command = [
        sys.executable,
        str(ROOT / "benchmarks" / "loadgen.py"),
        "127.0.0.1",
        str(port),
        "/slow",
        "--clients",
        str(clients),
        "--duration",
        str(duration),
    ]
    if honor:
        command.append("--honor-retry-after")
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    return json.loads(out)


def overload(duration: float, clients: int, server_kind: str) -> dict[str, Any]:
    runs = {
        "seed (pool 5, overflow 0, timeout 30 s)": (
            "seed",
            {"BENCH_SEED_POOL_SIZE": "5", "BENCH_SEED_MAX_OVERFLOW": "0"},
            False,
        ),
        "pooltender": ("pooltender", OVERLOAD_ENV, False),
        "pooltender, clients honour Retry-After": ("pooltender", OVERLOAD_ENV, True),
    }
    results = {}
    for label, (app, env, honor) in runs.items():
        with Server(app, env, server_kind) as server:
            results[label] = loadgen(server.port, duration, clients, honor)
        print(f"  {label}: {results[label]['statuses'].keys()}", file=sys.stderr)
    return results


# -- report ------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "python": platform.python_version(),
        "load_before": os.getloadavg(),
    }


async def setup() -> str:
    engine = create_async_engine(URL)
    async with engine.begin() as connection:
        await connection.run_sync(metadata.drop_all)
        await connection.run_sync(metadata.create_all)
        await connection.execute(
            insert(users), [{"id": i, "name": f"user {i}"} for i in range(1, 1001)]
        )
        version = str(await connection.scalar(text("SHOW server_version")))
    await engine.dispose()
    return version


async def teardown() -> None:
    engine = create_async_engine(URL)
    async with engine.begin() as connection:
        await connection.run_sync(metadata.drop_all)
    await engine.dispose()


def report(results: dict[str, Any]) -> str:
    lines = [f"Machine: {results['machine']}, PostgreSQL {results['postgresql']}", ""]
    if "connect" in results:
        c = results["connect"]
        m = c["median_seconds"]
        lines += [
            f"| connect (median of {c['rounds']}) | ms |",
            "|---|---:|",
            *(f"| {name} + SELECT 1 | {v * 1000:.3f} |" for name, v in m.items()),
            f"| ratio | {c['ratio']:.1f}x |",
            "",
        ]
    if "paths" in results:
        p = results["paths"]
        seed_us = next(iter(p.values()))
        lines += [
            "| database work of one read, in process (median us) | us | vs seed |",
            "|---|---:|---:|",
            *(f"| {name} | {us:.0f} | {seed_us / us:.2f}x |" for name, us in p.items()),
            "",
        ]
    trips = results.get("round_trips", {})
    for server_kind, h in results.get("http", {}).items():
        seed = next(iter(h.values()))
        lines += [
            f"`GET /users/{{id}}`, {SERVER_LABELS[server_kind]} (median of "
            f"{len(seed['rps_ratios'])} interleaved rounds; ratios: each round's, vs the "
            "seed-style app of that round)",
            "",
            "| app | req/s | vs seed (rounds) | server CPU us/req | seed's CPU / app's (rounds) "
            "| round trips/req | p50 ms | p99 ms | non-2xx |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for app, r in h.items():
            rps_ratios = ", ".join(f"{x:.2f}" for x in r["rps_ratios"])
            cpu_ratios = ", ".join(f"{x:.2f}" for x in r["cpu_ratios"])
            trip = trips.get(app)
            lines.append(
                f"| {app} | {r['rps']:.0f} | {r['rps'] / seed['rps']:.2f}x ({rps_ratios}) "
                f"| {r['cpu_us_per_request']:.0f} "
                f"| {seed['cpu_us_per_request'] / (r['cpu_us_per_request'] or 1):.2f}x "
                f"({cpu_ratios}) | {'-' if trip is None else f'{trip:.2f}'} "
                f"| {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['non_2xx']} |"
            )
        lines.append("")
    if "overload" in results:
        lines += [
            "| overload: 200 clients, pool 5, 100 ms query | served/s | served p50 s "
            "| served p99 s | 503 | 503 p99 ms | other failures |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for label, r in results["overload"].items():
            ok = r["statuses"].get("200", {"count": 0})
            refused = r["statuses"].get("503", {"count": 0})
            other = sum(v["count"] for k, v in r["statuses"].items() if k not in ("200", "503"))
            lines.append(
                f"| {label} | {ok['count'] / r['elapsed']:.1f} | {ok.get('p50', 0):.3f} "
                f"| {ok.get('p99', 0):.3f} | {refused['count']} "
                f"| {refused.get('p99', 0) * 1000:.1f} | {other + r['client_errors']} |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=16, help="wrk connections")
    parser.add_argument("--clients", type=int, default=200, help="overload clients")
    parser.add_argument("--only", default="connect,http,overload")
    parser.add_argument("--server", choices=[*sorted(SERVER_OPTIONS), "both"], default="both")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved http rounds")
    parser.add_argument(
        "--apps", default="", help="comma-separated http apps to keep (the seed always runs)"
    )
    parser.add_argument("--max-waiting", default=OVERLOAD_ENV["DATABASE_MAX_WAITING"])
    parser.add_argument("--pool-timeout", default=OVERLOAD_ENV["DATABASE_POOL_TIMEOUT"])
    parser.add_argument("--output", default=str(ROOT / "benchmarks" / "results.json"))
    args = parser.parse_args()
    parts = set(args.only.split(","))
    if args.apps:
        wanted = args.apps.split(",")
        for i, name in enumerate(list(HTTP_APPS)):
            if i and name not in wanted:
                del HTTP_APPS[name]
    servers = sorted(SERVER_OPTIONS, reverse=True) if args.server == "both" else [args.server]
    OVERLOAD_ENV["DATABASE_MAX_WAITING"] = str(args.max_waiting)
    OVERLOAD_ENV["DATABASE_POOL_TIMEOUT"] = str(args.pool_timeout)
    results: dict[str, Any] = {
        "machine": machine(),
        "started": time.time(),
        "settings": {
            "overload": OVERLOAD_ENV,
            "wrk_connections": args.connections,
            "servers": servers,
            "rounds": args.rounds,
            "duration": args.duration,
        },
    }
    results["postgresql"] = asyncio.run(setup())
    try:
        if "connect" in parts:
            results["connect"] = asyncio.run(connect_vs_pooled(300))
            results["paths"] = asyncio.run(request_paths(300))
        if "http" in parts:
            results["round_trips"] = round_trips()
            results["http"] = http_throughput(args.duration, args.connections, servers, args.rounds)
        if "overload" in parts:
            results["overload"] = overload(args.duration, args.clients, servers[0])
    finally:
        asyncio.run(teardown())
    Path(args.output).write_text(json.dumps(results, indent=2))
    print(report(results))


if __name__ == "__main__":
    main()
