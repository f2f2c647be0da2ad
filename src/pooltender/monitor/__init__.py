"""The pool monitor: counters, durations, held connections, leaks, event-loop stalls.

- :mod:`.histogram`: bounded-memory duration histograms with percentiles.
- :mod:`.sites`: the user's frame that checked a connection out.
- :mod:`.context`: the request (route template) a checkout belongs to.
- :mod:`.monitor`: :class:`PoolMonitor`, fed by SQLAlchemy pool events.
- :mod:`.watchdog`: the thread that logs leaks and event-loop stalls.
- :mod:`.snapshot`: the plain-data view every reader uses.
"""

from .context import RequestContext as RequestContext
from .context import current_request as current_request
from .histogram import Histogram as Histogram
from .monitor import PoolMonitor as PoolMonitor
from .snapshot import pool_snapshot as pool_snapshot
from .watchdog import Watchdog as Watchdog

__all__ = [
    "Histogram",
    "PoolMonitor",
    "RequestContext",
    "Watchdog",
    "current_request",
    "pool_snapshot",
]
