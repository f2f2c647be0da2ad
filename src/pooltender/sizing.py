"""Pool sizing: pure functions over numbers and stats snapshots. No I/O.

The model is Little's law: the connections busy on average are the arrival
rate times the time each request holds one, ``L = λ x W``. A pool sized to
``L`` runs at 100 % utilisation and queues at the first burst, so the
recommendation adds headroom::

    pool_size    = ceil(requests/s x hold seconds x 1.2)      # 500 x 0.010 x 1.2 -> 6
    max_overflow = ceil(pool_size / 2)                         # bursts up to 1.5x
    max_waiting  = pool_size + max_overflow                    # one pool-width of queue
    pool_timeout = max(1 s, 2 x time to drain a full queue)

More connections stop helping at the server's ceiling: PostgreSQL's rule of
thumb is ``cores x 2 + effective_spindle_count`` active connections, and the
hard limit per process is ``usable slots / (workers x instances)``. When the
budget ``workers x instances x (pool_size + max_overflow)`` exceeds the usable
slots, a server-side pooler (PgBouncer in transaction mode) belongs in front.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .stats import Snapshot

__all__ = [
    "HEADROOM",
    "Observation",
    "Recommendation",
    "budget",
    "core_ceiling",
    "observe",
    "recommend",
    "usable_slots",
]

HEADROOM = 1.2
"""Spare capacity over the mean concurrency: the pool runs at most ~83 % busy."""

POSTGRES_SUPERUSER_RESERVED = 3
"""PostgreSQL's default ``superuser_reserved_connections``."""


def usable_slots(max_connections: int, superuser_reserved: int = 0, reserved: int = 0) -> int:
    """Connections an application role may open: ``max_connections`` less the reserved slots."""
    return max(0, max_connections - superuser_reserved - reserved)


def budget(workers: int, instances: int, pool_size: int, max_overflow: int) -> int:
    """Connections a deployment may open at once: ``workers x instances x (size + overflow)``."""
    return workers * instances * (pool_size + max(0, max_overflow))


def core_ceiling(cores: int, spindles: int = 1) -> int:
    """PostgreSQL's rule of thumb for useful *active* connections: ``cores x 2 + spindles``."""
    return cores * 2 + spindles


@dataclass(frozen=True, slots=True)
class Recommendation:
    """Pool settings for one process, and the reasoning behind them."""

    rps: float
    hold_seconds: float
    processes: int
    concurrency: float
    pool_size: int
    max_overflow: int
    max_waiting: int
    pool_timeout: float
    ceiling: int | None
    ceiling_reason: str | None
    budget: int | None
    usable: int | None
    pgbouncer: bool
    notes: list[str] = field(default_factory=list)

    @property
    def formula(self) -> str:
        """The arithmetic, as printed by ``pooltender size``."""
        spread = f" / {self.processes} processes" if self.processes > 1 else ""
        needed = max(1, math.ceil(round(self.concurrency * HEADROOM, 9)))
        text = (
            f"pool_size = ceil({self.rps:.4g} req/s x {self.hold_seconds:.3g} s x {HEADROOM:g}"
            f"{spread}) = ceil({self.concurrency * HEADROOM:.3g}) = {needed}"
        )
        if needed != self.pool_size:
            text += f", capped at the ceiling: {self.pool_size}"
        return text


def recommend(
    rps: float,
    hold_seconds: float,
    *,
    workers: int = 1,
    instances: int = 1,
    max_connections: int | None = None,
    reserved: int = POSTGRES_SUPERUSER_RESERVED,
    db_cores: int | None = None,
) -> Recommendation:
    """Pool settings for ``rps`` requests/s spread over ``workers x instances`` processes,
    each request holding a connection ``hold_seconds``.

    ``max_connections``/``reserved`` (server slots) and ``db_cores`` (server CPU
    cores) set the ceilings; without them there is none.
    """
    if rps < 0 or hold_seconds < 0:
        raise ValueError("rps and hold_seconds must not be negative")
    if workers < 1 or instances < 1:
        raise ValueError("workers and instances must be at least 1")
    processes = workers * instances
    concurrency = rps * hold_seconds / processes
    # round() first: 500 x 0.01 x 1.2 is 6.000000000000001 in binary floating point.
    pool_size = max(1, math.ceil(round(concurrency * HEADROOM, 9)))
    max_overflow = max(1, math.ceil(pool_size / 2))
    notes: list[str] = []

    ceilings: list[tuple[int, str]] = []
    usable: int | None = None
    if max_connections is not None:
        usable = usable_slots(max_connections, reserved)
        ceilings.append(
            (
                usable // processes,
                f"usable slots {usable} (max_connections {max_connections} - reserved {reserved})"
                f" / {processes} processes",
            )
        )
    if db_cores is not None:
        server = core_ceiling(db_cores)
        ceilings.append(
            (
                max(1, server // processes),
                f"(cores {db_cores} x 2 + 1 spindle) = {server} active connections"
                f" / {processes} processes",
            )
        )
    ceiling, ceiling_reason = min(ceilings) if ceilings else (None, None)

    pgbouncer = False
    if ceiling is not None:
        if pool_size > ceiling:
            pgbouncer = True
            notes.append(
                f"the load needs {pool_size} connections per process but only {ceiling} fit:"
                " more connections only add contention; put PgBouncer (transaction mode) in"
                " front, set DATABASE_PGBOUNCER=true, and lower the hold time"
            )
            pool_size = max(1, ceiling)
        max_overflow = max(0, min(max_overflow, ceiling - pool_size))
    total = budget(workers, instances, pool_size, max_overflow)
    if usable is not None and total > usable:
        pgbouncer = True
    if processes >= 8 and max_connections is not None and not pgbouncer:
        notes.append(
            f"{processes} processes each hold idle connections: PgBouncer in transaction mode"
            " lets them share fewer server connections"
        )

    max_waiting = pool_size + max_overflow
    # A full queue drains in (queue length / connections) x hold time.
    drain = max_waiting / (pool_size + max_overflow) * hold_seconds
    pool_timeout = max(1.0, round(2 * drain, 1))
    return Recommendation(
        rps=rps,
        hold_seconds=hold_seconds,
        processes=processes,
        concurrency=concurrency,
        pool_size=pool_size,
        max_overflow=max_overflow,
        max_waiting=max_waiting,
        pool_timeout=pool_timeout,
        ceiling=ceiling,
        ceiling_reason=ceiling_reason,
        budget=total,
        usable=usable,
        pgbouncer=pgbouncer,
        notes=notes,
    )


@dataclass(frozen=True, slots=True)
class Observation:
    """What two snapshots of one database say about its load."""

    name: str
    seconds: float
    checkouts: int
    rps: float
    hold_seconds: float
    hold_source: str
    pool_size: int
    max: int | None


def observe(before: Snapshot, after: Snapshot) -> dict[str, Observation]:
    """Arrival rate and mean hold time per database between two snapshots.

    Rate: new checkouts / elapsed seconds. Hold time: the growth of the routes' total
    hold time over the growth of their checkouts (a mean, as Little's law needs); when
    no route moved, the snapshot's use-time p50.
    """
    elapsed = after.generated_at - before.generated_at
    if elapsed <= 0:
        raise ValueError("the second snapshot must be newer than the first")
    result: dict[str, Observation] = {}
    for name, now in after.databases.items():
        then = before.databases.get(name)
        if then is None:
            continue
        checkouts = now.checkouts - then.checkouts
        old_routes = {r.route: r.hold for r in then.routes}
        hold_delta = 0.0
        count_delta = 0
        for route in now.routes:
            old = old_routes.get(route.route)
            hold_delta += route.hold.sum - (old.sum if old else 0.0)
            count_delta += route.hold.count - (old.count if old else 0)
        if count_delta > 0 and hold_delta > 0:
            hold, source = hold_delta / count_delta, "mean hold time of the routes"
        else:
            hold, source = now.use_time.p50, "use_time p50"
        result[name] = Observation(
            name=name,
            seconds=elapsed,
            checkouts=max(0, checkouts),
            rps=max(0, checkouts) / elapsed,
            hold_seconds=hold,
            hold_source=source,
            pool_size=now.pool_size,
            max=now.max,
        )
    return result
