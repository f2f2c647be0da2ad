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

Several worker processes: each process has its own pools. Behind one port
(``uvicorn --workers N``, gunicorn) set ``POOLTENDER_METRICS_DIR`` to a directory the
workers share: each scrape then answers for every worker, each with a ``worker``
label (see :mod:`pooltender.workers`). With one port per worker, give each worker's
series a ``worker`` label (``PoolCollector(dbs, worker=str(os.getpid()))``, or
``install(app, metrics_worker_label=True)``) and scrape each; ``sum by (pool_name)``
gives the service's totals either way.
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
from .workers import WorkerSnapshots  # noqa: E402

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
    ``workers``: the snapshots of every worker of the process group
    (:class:`~pooltender.workers.WorkerSnapshots`): the scrape answers for all of them,
    each with its ``worker`` label (its pid).
    """

    def __init__(
        self,
        databases: DatabasesSource,
        *,
        worker: str | None = None,
        workers: WorkerSnapshots | None = None,
    ) -> None:
        self._source = databases
        self._worker = worker
        self._workers = workers

    def describe(self) -> Iterable[Metric]:
        return []  # the families depend on the running databases: no up-front names

    def collect(self) -> Iterator[Metric]:
        source = self._source
        dbs = source if isinstance(source, Databases) else source()
        if dbs is None:
            return
        snapshot = dbs.stats()
        if self._workers is None:
            yield from render([(self._worker, snapshot.databases.values())])
            return
        self._workers.publish(snapshot)  # this worker's figures as of now
        yield from render(
            [(str(pid), snap.databases.values()) for pid, snap in self._workers.collect()]
        )


def render(sources: Iterable[tuple[str | None, Iterable[PoolStats]]]) -> Iterator[Metric]:
    """The metric families of some snapshots, ``(worker label or None, databases)`` each."""
    sources = list(sources)
    extra = ("worker",) if any(worker is not None for worker, _ in sources) else ()
    families: dict[str, Any] = {
        name: _KINDS[kind](name, doc, labels=["pool_name", *labels, *extra])
        for name, (kind, labels, doc) in METRICS.items()
    }
    for worker, stats in sources:
        tail = (worker or "",) if extra else ()
        for pool_stats in stats:
            _add(families, pool_stats, tail)
    yield from families.values()


def _add(families: dict[str, Any], s: PoolStats, tail: tuple[str, ...]) -> None:
    """One database's series, into ``families``."""

    def add(name: str, value: float, *labels: str) -> None:
        families[name].add_metric([s.name, *labels, *tail], value)

    def histogram(name: str, d: Durations, *labels: str) -> None:
        families[name].add_metric([s.name, *labels, *tail], list(d.buckets), d.sum)

    for f in (*gauges(), *counters()):
        metric = f.metadata["metric"]
        value = getattr(s, f.name)
        if metric is not None and value is not None:
            labels = (
                str(getattr(s, label[1:])) if label.startswith("@") else label
                for _, label in metric.labels
            )
            add(metric.name, value, *labels)
    add("db_client_connection_idle_min", 0)
    histogram("db_client_connection_create_time_seconds", s.connect_time)
    histogram("db_client_connection_wait_time_seconds", s.wait_time)
    for route in sorted(s.routes, key=lambda r: r.route):
        histogram("db_client_connection_use_time_seconds", route.hold, route.route)
    add("pooltender_event_loop_blocked", s.loop_blocked.count)
    add("pooltender_event_loop_blocked_max_seconds", s.loop_blocked.max)
