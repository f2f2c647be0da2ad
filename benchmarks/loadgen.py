"""A closed-loop HTTP/1.1 load generator on raw asyncio streams (cheap per request).

``python benchmarks/loadgen.py HOST PORT PATH --clients 200 --duration 10``
prints one JSON line: per status, the count and latency percentiles (seconds).
Each client keeps one keep-alive connection and sends its next request as soon as
the previous answer arrived (``--honor-retry-after``: after a 503, it first waits
the ``Retry-After`` seconds with +-50 % jitter, as a well-behaved client does; without
jitter, every refused client would come back in the same instant).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import time


def percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    return {
        "p50": statistics.median(ordered),
        "p90": at(0.90),
        "p99": at(0.99),
        "max": ordered[-1],
    }


async def client(
    host: str, port: int, path: str, deadline: float, honor: bool, out: dict[int, list[float]]
) -> None:
    request = f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while time.monotonic() < deadline:
            start = time.monotonic()
            writer.write(request)
            status_line = await reader.readline()
            status = int(status_line.split()[1])
            length, retry_after = 0, 0.0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode("latin-1").partition(":")
                if name.lower() == "content-length":
                    length = int(value)
                elif name.lower() == "retry-after":
                    retry_after = float(value)
            await reader.readexactly(length)
            out.setdefault(status, []).append(time.monotonic() - start)
            if honor and status == 503 and retry_after:
                pause = retry_after * random.uniform(0.5, 1.5)
                await asyncio.sleep(min(pause, max(0.0, deadline - time.monotonic())))
    finally:
        writer.close()


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    parser.add_argument("path")
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--honor-retry-after", action="store_true")
    args = parser.parse_args()
    out: dict[int, list[float]] = {}
    started = time.monotonic()
    deadline = started + args.duration
    results = await asyncio.gather(
        *(
            client(args.host, args.port, args.path, deadline, args.honor_retry_after, out)
            for _ in range(args.clients)
        ),
        return_exceptions=True,
    )
    elapsed = time.monotonic() - started
    errors = [f"{type(r).__name__}: {r}" for r in results if isinstance(r, BaseException)]
    print(
        json.dumps(
            {
                "elapsed": elapsed,
                "client_errors": len(errors),
                "first_error": errors[0] if errors else None,
                "statuses": {
                    str(status): {"count": len(v), **percentiles(v)} for status, v in out.items()
                },
            }
        )
    )


if __name__ == "__main__":
    try:  # the cheaper loop keeps the generator's own latency out of the figures
        import uvloop
    except ImportError:
        asyncio.run(main())
    else:
        uvloop.run(main())
