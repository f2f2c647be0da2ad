"""Prometheus metrics, rendered from the snapshot at scrape time (``pooltender[metrics]``).

:class:`PoolCollector` is a ``prometheus_client`` collector: nothing is counted twice
and nothing is pushed; every scrape renders each database's
:class:`~pooltender.stats.PoolStats`. Names follow the OpenTelemetry database-client
connection conventions (``db.client.connection.*`` written the Prometheus way), the
pool name in the ``pool_name`` label; what the conventions lack is ``pooltender_*``.
Each gauge and counter comes from the field of :class:`PoolStats` that declares it,
so a counter added there is exported here without an edit.

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
``sum by (pool_name)`` then gives the service's totals.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from ._extras import require

require("prometheus_client", "metrics")

from prometheus_client.core import (  # noqa: E402
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector  # noqa: E402

from .databases import Databases  # noqa: E402
from .stats import Durations, PoolStats, counters, gauges  # noqa: E402

__all__ = ["METRICS", "PoolCollector"]


def _families() -> dict[str, tuple[str, tuple[str, ...], str]]:
    families: dict[str, tuple[str, tuple[str, ...], str]] = {}
    for kind, fields in (("gauge", gauges()), ("counter", counters())):
        for f in fields:
            metric = f.metadata["metric"]
            if metric is not None:
                labels = tuple(name for name, _ in metric.labels)
                families.setdefault(metric.name, (kind, labels, metric.help))
    families["db_client_connection_idle_min"] = (
        "gauge",
        (),
        "Fewest idle connections the pool keeps (QueuePool keeps no minimum: 0).",
    )
    families["db_client_connection_create_time_seconds"] = (
        "histogram", (), "Time to open a new connection.",
    )  # fmt: skip
    families["db_client_connection_wait_time_seconds"] = (
        "histogram",
        (),
        "Time a checkout took to obtain a connection (waiting, and opening one if needed).",
    )
    families["db_client_connection_use_time_seconds"] = (
        "histogram",
        ("route",),
        "Time between checkout and check-in, by route template.",
    )
    families["pooltender_event_loop_blocked"] = (
        "counter",
        (),
        "Times the event loop stalled past the threshold while this pool held connections.",
    )
    families["pooltender_event_loop_blocked_max_seconds"] = ("gauge", (), "Longest such stall.")
    return families


METRICS: dict[str, tuple[str, tuple[str, ...], str]] = _families()
"""Every metric family: its type, its labels (besides ``pool_name``), its help text."""

_KINDS: dict[str, Any] = {
    "gauge": GaugeMetricFamily,
    "counter": CounterMetricFamily,
    "histogram": HistogramMetricFamily,
}

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
        yield from render(dbs.stats().databases.values(), worker=self._worker)


def render(stats: Iterable[PoolStats], *, worker: str | None = None) -> Iterator[Metric]:
    """The metric families of some databases' snapshots."""
    extra = ("worker",) if worker is not None else ()
    tail = (worker,) if worker is not None else ()
    families: dict[str, Any] = {
        name: _KINDS[kind](name, doc, labels=["pool_name", *labels, *extra])
        for name, (kind, labels, doc) in METRICS.items()
    }
    scalars = (*gauges(), *counters())
    for s in stats:

        def add(name: str, value: float, *labels: str, _pool: str = s.name) -> None:
            families[name].add_metric([_pool, *labels, *tail], value)

        def histogram(name: str, d: Durations, *labels: str, _pool: str = s.name) -> None:
            families[name].add_metric([_pool, *labels, *tail], list(d.buckets), d.sum)

        for f in scalars:
            metric = f.metadata["metric"]
            value = getattr(s, f.name)
            if metric is not None and value is not None:
                add(metric.name, value, *(label for _, label in metric.labels))
        add("db_client_connection_idle_min", 0)
        histogram("db_client_connection_create_time_seconds", s.connect_time)
        histogram("db_client_connection_wait_time_seconds", s.wait_time)
        for route in sorted(s.routes, key=lambda r: r.route):
            histogram("db_client_connection_use_time_seconds", route.hold, route.route)
        add("pooltender_event_loop_blocked", s.loop_blocked.count)
        add("pooltender_event_loop_blocked_max_seconds", s.loop_blocked.max)
    yield from families.values()
