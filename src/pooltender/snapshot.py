"""Build one database's :class:`~pooltender.stats.PoolStats`: the only place that does.

It reads the pool's public counters, the wait queue's counters and the monitor's
merged figures and held table; no I/O, safe from any thread.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from .monitor.histogram import Histogram
from .monitor.sites import format_site
from .secrets import redact_url
from .stats import Durations, HeldConnection, LoopBlocks, PoolStats, RouteStats

if TYPE_CHECKING:
    from .database import Database

__all__ = ["pool_stats"]


def durations(histogram: Histogram) -> Durations:
    return Durations(
        count=histogram.count,
        p50=histogram.percentile(0.5),
        p90=histogram.percentile(0.9),
        p99=histogram.percentile(0.99),
        max=histogram.max,
        sum=histogram.sum,
        buckets=tuple(histogram.prometheus_buckets()),
    )


def pool_stats(database: Database) -> PoolStats:
    """The snapshot of ``database`` now (started or not)."""
    settings, queue, monitor = database.settings, database.wait_queue, database.monitor
    pool = database.pool
    if pool is not None:
        idle, used = pool.checkedin(), pool.checkedout()
        overflow = max(0, pool.overflow())
        pool_size = pool.size()
    else:  # not started (or stopped): nothing open
        idle = used = overflow = 0
        pool_size = settings.pool_size
    merged = monitor.stats()
    now = time.perf_counter()
    held = monitor.held_now()
    routes = sorted(merged.routes.items(), key=lambda item: item[1].sum, reverse=True)
    return PoolStats(
        name=settings.name,
        url=redact_url(settings.url),
        driver=settings.driver.drivername,
        server=settings.host,
        pool_size=pool_size,
        checked_out=used,
        overflow=overflow,
        total=idle + used,
        available=idle,
        max=settings.max_connections,
        waiting=queue.waiting,
        max_waiting=settings.wait_limit,
        server_connections_max=database.server_slots,
        connections_leaking=sum(1 for h in held if h.leak),
        timeouts=queue.timeouts,
        rejected=queue.rejected,
        leaks_suspected=monitor.leaks_suspected,
        checkouts=merged.checkouts,
        connections_created=merged.created,
        connections_invalidated=merged.invalidated,
        connections_reclaimed=merged.reclaimed,
        held_after_response=merged.after_response,
        failovers=database.failover.failovers,
        wait_time=durations(merged.wait),
        use_time=durations(Histogram.merged(merged.routes.values())),
        connect_time=durations(merged.connect),
        routes=tuple(RouteStats(route, durations(hist)) for route, hist in routes),
        held=tuple(
            HeldConnection(
                id=h.id,
                route=h.route,
                age=now - h.started,
                site=format_site(h.site),
                leak=h.leak,
                after_response=h.after_response,
            )
            for h in held
        ),
        loop_blocked=LoopBlocks(monitor.loop_blocked, monitor.loop_blocked_max),
    )
