"""The snapshot of one pool: plain data every view reads (JSON, Prometheus, logs, CLI).

Meanings of the pool figures (the numbers SQLAlchemy's ``QueuePool`` keeps):

- ``pool_size``: connections the pool keeps open when idle (``DATABASE_POOL_SIZE``).
- ``checked_out``: connections lent out now (in a request, a task, a script).
- ``overflow``: connections open beyond ``pool_size`` now (0 when within it).
- ``total``: connections open now, lent out or idle (``checked_out + available``).
- ``available``: idle connections open now, ready for a checkout without waiting.
  A checkout may also open a new one while ``total < max``.
- ``max``: the most connections the pool may open (``pool_size + max_overflow``);
  ``None`` when unbounded. ``waiting``: checkouts waiting for a connection now;
  ``max_waiting``: how many may wait before the next is refused (``None``: no limit).
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy.pool import Pool, QueuePool

from ..pool import Admission
from ..settings import DatabaseSettings, redact_url
from .histogram import Histogram
from .monitor import PoolMonitor
from .sites import format_site

__all__ = ["MAX_HELD", "MAX_ROUTES_SHOWN", "pool_snapshot"]

MAX_ROUTES_SHOWN = 50
MAX_HELD = 100


def pool_snapshot(
    settings: DatabaseSettings,
    pool: Pool | None,
    admission: Admission,
    monitor: PoolMonitor,
) -> dict[str, Any]:
    """The per-database dict of ``GET /debug/pool-stats`` (see the module docstring)."""
    if isinstance(pool, QueuePool):
        idle, used = pool.checkedin(), pool.checkedout()
        overflow = max(0, pool.overflow())
        pool_size = pool.size()
    else:  # not started (or stopped): nothing open
        idle = used = overflow = 0
        pool_size = settings.pool_size
    stats = monitor.stats()
    now = time.perf_counter()
    routes = sorted(stats.routes.items(), key=lambda item: item[1].sum, reverse=True)
    held = monitor.held_now()
    return {
        "name": settings.name,
        "url": redact_url(settings.url),
        "driver": settings.driver.drivername,
        "pool_size": pool_size,
        "checked_out": used,
        "overflow": overflow,
        "total": idle + used,
        "available": idle,
        "max": settings.max_connections,
        "waiting": admission.waiting,
        "max_waiting": settings.wait_limit,
        "timeouts": admission.timeouts,
        "rejected": admission.rejected,
        "leaks_suspected": monitor.leaks_suspected,
        "checkouts": stats.checkouts,
        "connections_created": stats.created,
        "connections_invalidated": stats.invalidated,
        "connections_reclaimed": stats.reclaimed,
        "held_after_response": stats.after_response,
        "wait_time": stats.wait.summary(),
        "use_time": Histogram.merged(stats.routes.values()).summary(),
        "connect_time": stats.connect.summary(),
        "routes": [
            {
                "route": route,
                "checkouts": hist.count,
                "hold_total": hist.sum,
                "hold_p50": hist.percentile(0.5),
                "hold_p99": hist.percentile(0.99),
                "hold_max": hist.max,
            }
            for route, hist in routes[:MAX_ROUTES_SHOWN]
        ],
        "held": [
            {
                "id": h.id,
                "route": h.route,
                "age": now - h.started,
                "site": format_site(h.site),
                "leak": h.leak,
                "after_response": bool(
                    h.context is not None
                    and h.context.response_started is not None
                    and h.started < h.context.response_started
                ),
            }
            for h in held[:MAX_HELD]
        ],
        "loop_blocked": {"count": monitor.loop_blocked, "max": monitor.loop_blocked_max},
    }
