"""The pool monitor: counters, durations, held connections, leaks, event-loop stalls.

A leaf of the package: it knows SQLAlchemy's pool events, nothing of pooltender's
pools, settings or web integrations.

- :mod:`.histogram`: bounded-memory duration histograms with percentiles.
- :mod:`.sites`: the user's frame that checked a connection out.
- :mod:`.context`: the request (route template) a checkout belongs to.
- :mod:`.monitor`: :class:`PoolMonitor`, fed by SQLAlchemy pool events.
- :mod:`.watchdog`: the thread that logs leaks and event-loop stalls.
"""

from .context import RequestContext as RequestContext
from .context import current_request as current_request
from .monitor import PoolMonitor as PoolMonitor
from .watchdog import Watchdog as Watchdog

__all__ = ["PoolMonitor", "RequestContext", "Watchdog", "current_request"]
