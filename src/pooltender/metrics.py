"""Prometheus metrics, read from the pool snapshots at scrape time.

:class:`PoolCollector` is a ``prometheus_client`` collector: nothing is counted
twice and nothing is pushed; every scrape reads each database's snapshot. Names
follow the OpenTelemetry database-client connection conventions
(``db.client.connection.*`` written the Prometheus way), the pool name in the
``pool_name`` label; what the conventions lack is ``pooltender_*``.

```python
from prometheus_client import CollectorRegistry, generate_latest
registry = CollectorRegistry()
registry.register(PoolCollector(databases))
print(generate_latest(registry).decode())
```

Several worker processes: each process has its own pools and answers for them
only. Give each worker's series a ``worker`` label (``PoolCollector(dbs,
worker=str(os.getpid()))``, or ``install(app, metrics_worker_label=True)``) and
scrape each worker (one port per worker, or one worker per container);
``sum by (pool_name)`` then gives the service's totals. ``prometheus_client``'s
multiprocess mode does not apply: it aggregates only its own metric types, not
custom collectors.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from .databases import Databases
from .monitor.histogram import Histogram

__all__ = ["METRICS", "PoolCollector"]

METRICS: dict[str, tuple[str, tuple[str, ...], str]] = {
    # name: (type, labels besides pool_name, help)
    "db_client_connection_count": (
        "gauge",
        ("state",),
        "Connections open now, by state: idle (in the pool) or used (checked out).",
    ),
    "db_client_connection_max": ("gauge", (), "Most connections the pool may open."),
    "db_client_connection_idle_max": ("gauge", (), "Most idle connections the pool keeps."),
    "db_client_connection_idle_min": (
        "gauge",
        (),
        "Fewest idle connections the pool keeps (QueuePool keeps no minimum: 0).",
    ),
    "db_client_connection_pending_requests": (
        "gauge",
        (),
        "Checkouts waiting for a connection now.",
    ),
    "db_client_connection_timeouts": (
        "counter",
        (),
        "Checkouts that found no connection within the pool timeout.",
    ),
    "db_client_connection_create_time_seconds": (
        "histogram",
        (),
        "Time to open a new connection.",
    ),
    "db_client_connection_wait_time_seconds": (
        "histogram",
        (),
        "Time a checkout took to obtain a connection (waiting, and opening one if needed).",
    ),
    "db_client_connection_use_time_seconds": (
        "histogram",
        ("route",),
        "Time between checkout and check-in, by route template.",
    ),
    "pooltender_checkouts": ("counter", (), "Connections checked out."),
    "pooltender_connections_created": ("counter", (), "Connections opened."),
    "pooltender_connections_invalidated": (
        "counter",
        (),
        "Connections invalidated (lost, failed pre-ping, or invalidated by the application).",
    ),
    "pooltender_connections_reclaimed": (
        "counter",
        (),
        "Checked-out connections never returned, reclaimed by the garbage collector.",
    ),
    "pooltender_rejected": (
        "counter",
        (),
        "Checkouts refused at once because the wait queue was full (answered 503).",
    ),
    "pooltender_leaks_suspected": (
        "counter",
        (),
        "Connections held longer than the leak threshold.",
    ),
    "pooltender_held_after_response": (
        "counter",
        (),
        "Connections still held after their request's response started.",
    ),
    "pooltender_connections_leaking": (
        "gauge",
        (),
        "Connections held now past the leak threshold.",
    ),
    "pooltender_event_loop_blocked": (
        "counter",
        (),
        "Times the event loop stalled past the threshold while this pool held connections.",
    ),
    "pooltender_event_loop_blocked_max_seconds": (
        "gauge",
        (),
        "Longest such stall.",
    ),
}
"""Every metric family: its type, its labels (besides ``pool_name``), its help text."""

DatabasesSource = Databases | Callable[[], Databases | None]


class PoolCollector(Collector):
    """Yields the metrics of every database of ``databases`` at each scrape.

    ``databases``: a :class:`Databases`, or a function returning the running one
    (``None`` before start: no series). ``worker``: a value for a ``worker`` label
    on every series (multi-process services, see the module docstring).
    """

    def __init__(self, databases: DatabasesSource, *, worker: str | None = None) -> None:
        self._source = databases
        self._worker = worker

    def describe(self) -> Iterable[Metric]:
        return []  # the families depend on the running databases: no up-front names

    def collect(self) -> Iterator[Metric]:
        source = self._source
        dbs = source if isinstance(source, Databases) else source()
        if dbs is None:
            return
        extra = ("worker",) if self._worker is not None else ()
        tail = (self._worker,) if self._worker is not None else ()
        families: dict[str, Any] = {}
        for name, (kind, labels, doc) in METRICS.items():
            family_type = {
                "gauge": GaugeMetricFamily,
                "counter": CounterMetricFamily,
                "histogram": HistogramMetricFamily,
            }[kind]
            families[name] = family_type(name, doc, labels=["pool_name", *labels, *extra])
        for database in dbs.values():
            s = database.stats()
            stats = database.monitor.stats()
            pool = database.name

            def add(name: str, value: float, *labels: str, _pool: str = pool) -> None:
                families[name].add_metric([_pool, *labels, *tail], value)

            def histogram(name: str, hist: Histogram, *labels: str, _pool: str = pool) -> None:
                families[name].add_metric(
                    [_pool, *labels, *tail], hist.prometheus_buckets(), hist.sum
                )

            add("db_client_connection_count", s["available"], "idle")
            add("db_client_connection_count", s["checked_out"], "used")
            if s["max"] is not None:
                add("db_client_connection_max", s["max"])
            add("db_client_connection_idle_max", s["pool_size"])
            add("db_client_connection_idle_min", 0)
            add("db_client_connection_pending_requests", s["waiting"])
            add("db_client_connection_timeouts", s["timeouts"])
            histogram("db_client_connection_create_time_seconds", stats.connect)
            histogram("db_client_connection_wait_time_seconds", stats.wait)
            for route, hist in sorted(stats.routes.items()):
                histogram("db_client_connection_use_time_seconds", hist, route)
            add("pooltender_checkouts", s["checkouts"])
            add("pooltender_connections_created", s["connections_created"])
            add("pooltender_connections_invalidated", s["connections_invalidated"])
            add("pooltender_connections_reclaimed", s["connections_reclaimed"])
            add("pooltender_rejected", s["rejected"])
            add("pooltender_leaks_suspected", s["leaks_suspected"])
            add("pooltender_held_after_response", s["held_after_response"])
            add("pooltender_connections_leaking", sum(1 for h in s["held"] if h["leak"]))
            add("pooltender_event_loop_blocked", s["loop_blocked"]["count"])
            add("pooltender_event_loop_blocked_max_seconds", s["loop_blocked"]["max"])
        yield from families.values()
