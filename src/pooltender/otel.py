"""OpenTelemetry metrics (``pooltender[otel]``): the same figures as ``/metrics``, through
the OpenTelemetry Metrics API, for services that export OTLP.

Names and attributes follow the semantic conventions for database client connection
metrics: ``db.client.connection.count`` (attribute ``db.client.connection.state`` =
``idle``/``used``), ``db.client.connection.max``, ``.idle.max``, ``.idle.min``,
``.pending_requests``, ``.timeouts``, and the histograms ``.create_time``,
``.wait_time`` and ``.use_time`` (seconds); every one carries
``db.client.connection.pool.name``. What the conventions lack is ``pooltender.*``
(rejections, leaks, loop stalls, ...). Levels and totals are *observable* instruments
read from the snapshot at collection time, as :mod:`pooltender.metrics` reads it at
scrape time, and come from the same declarations (:mod:`pooltender.stats`): a counter
declared there is exported here too. Durations are histograms, recorded as the pool
monitor measures them (the API has no observable histogram).

Only the API is needed; the application configures the SDK and its exporter::

    from pooltender.otel import PoolInstruments
    instruments = PoolInstruments(databases)   # the global MeterProvider by default
    instruments.watch()                        # start recording durations

With FastAPI: ``install(app, opentelemetry=True)`` (or a ``MeterProvider``). Each worker
process exports its own pools under its own resource, so the OpenTelemetry export
needs no sharing between workers (see :mod:`pooltender.workers` for ``/metrics``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from ._extras import require

require("opentelemetry", "otel")

from opentelemetry import metrics  # noqa: E402
from opentelemetry.metrics import CallbackOptions, MeterProvider, Observation  # noqa: E402

from .databases import Databases  # noqa: E402
from .stats import PoolStats, Snapshot, counters, gauges  # noqa: E402

__all__ = ["POOL_NAME", "STATE", "PoolInstruments", "otel_name"]

POOL_NAME = "db.client.connection.pool.name"
STATE = "db.client.connection.state"

_UNITS = {
    "db.client.connection.count": "{connection}",
    "db.client.connection.max": "{connection}",
    "db.client.connection.idle.max": "{connection}",
    "db.client.connection.idle.min": "{connection}",
    "db.client.connection.pending_requests": "{request}",
    "db.client.connection.timeouts": "{timeout}",
    "pooltender.server_connections_max": "{connection}",
    "pooltender.connections_leaking": "{connection}",
    "pooltender.event_loop_blocked_max": "s",
}
_SNAPSHOT_TTL = 0.05  # seconds: one snapshot serves every callback of one collection


def otel_name(prometheus_name: str) -> str:
    """``db_client_connection_idle_max`` -> ``db.client.connection.idle.max``."""
    prefix = "db_client_connection_"
    if prometheus_name.startswith(prefix):
        rest = prometheus_name[len(prefix) :].removesuffix("_seconds")
        rest = {"idle_max": "idle.max", "idle_min": "idle.min"}.get(rest, rest)
        return f"db.client.connection.{rest}"
    return "pooltender." + prometheus_name.removeprefix("pooltender_")


Source = Databases | Callable[[], Databases | None]


class PoolInstruments:
    """The instruments of the databases of ``source`` (a :class:`Databases` or a function
    returning the running one), on ``meter_provider`` (default: the global one)."""

    def __init__(self, source: Source, *, meter_provider: MeterProvider | None = None) -> None:
        from . import __version__

        self._source = source
        provider = meter_provider if meter_provider is not None else metrics.get_meter_provider()
        self.meter = provider.get_meter("pooltender", __version__)
        self._cached: tuple[float, Snapshot | None] = (0.0, None)
        self._lock = threading.Lock()
        self._watched: list[Any] = []
        self._create_instruments()

    # -- levels and totals: observable ------------------------------------------------

    def _snapshot(self) -> Snapshot | None:
        with self._lock:
            at, snapshot = self._cached
            now = time.monotonic()
            if snapshot is None or now - at > _SNAPSHOT_TTL:
                source = self._source
                dbs = source if isinstance(source, Databases) else source()
                snapshot = dbs.stats() if dbs is not None else None
                self._cached = (now, snapshot)
            return snapshot

    def _databases(self) -> Iterable[PoolStats]:
        snapshot = self._snapshot()
        return snapshot.databases.values() if snapshot is not None else ()

    def _create_instruments(self) -> None:
        readers: dict[str, list[Callable[[PoolStats], Observation | None]]] = {}
        kinds: dict[str, str] = {}
        for kind, fields in (("gauge", gauges()), ("counter", counters())):
            for f in fields:
                metric = f.metadata["metric"]
                if metric is None:
                    continue
                name = otel_name(metric.name)
                kinds[name] = kind
                readers.setdefault(name, []).append(_reader(f.name, metric.labels))
        kinds["db.client.connection.idle.min"] = "gauge"
        readers["db.client.connection.idle.min"] = [lambda s: Observation(0, {POOL_NAME: s.name})]
        kinds["pooltender.event_loop_blocked"] = "counter"
        readers["pooltender.event_loop_blocked"] = [
            lambda s: Observation(s.loop_blocked.count, {POOL_NAME: s.name})
        ]
        kinds["pooltender.event_loop_blocked_max"] = "gauge"
        readers["pooltender.event_loop_blocked_max"] = [
            lambda s: Observation(s.loop_blocked.max, {POOL_NAME: s.name})
        ]
        # The conventions' levels are UpDownCounters; pooltender's own levels are gauges.
        for name, reads in readers.items():
            callback = self._callback(reads)
            unit = _UNITS.get(name, "1")
            if kinds[name] == "counter":
                self.meter.create_observable_counter(name, [callback], unit=unit)
            elif name.startswith("db.client.connection."):
                self.meter.create_observable_up_down_counter(name, [callback], unit=unit)
            else:
                self.meter.create_observable_gauge(name, [callback], unit=unit)
        describe = "Time {}."
        self._histograms = {
            "create": self.meter.create_histogram(
                "db.client.connection.create_time", unit="s",
                description=describe.format("to open a new connection"),
            ),
            "wait": self.meter.create_histogram(
                "db.client.connection.wait_time", unit="s",
                description=describe.format("a checkout took to obtain a connection"),
            ),
            "use": self.meter.create_histogram(
                "db.client.connection.use_time", unit="s",
                description=describe.format("between checkout and check-in"),
            ),
        }  # fmt: skip

    def _callback(
        self, reads: list[Callable[[PoolStats], Observation | None]]
    ) -> Callable[[CallbackOptions], Iterable[Observation]]:
        def callback(options: CallbackOptions) -> Iterable[Observation]:
            for stats in self._databases():
                for read in reads:
                    observation = read(stats)
                    if observation is not None:
                        yield observation

        return callback

    # -- durations: recorded as measured ------------------------------------------------

    def watch(self, databases: Databases | None = None) -> None:
        """Record each database's durations from now on (``databases``: default the
        source's running ones). Idempotent per database."""
        source = self._source
        dbs = databases or (source if isinstance(source, Databases) else source())
        for database in (dbs or {}).values():
            monitor = database.monitor
            if any(m is monitor for m, _ in self._watched):
                continue
            observer = self._observer(database.name)
            monitor.observers.append(observer)
            self._watched.append((monitor, observer))

    def unwatch(self) -> None:
        """Stop recording durations."""
        for monitor, observer in self._watched:
            if observer in monitor.observers:
                monitor.observers.remove(observer)
        self._watched.clear()

    def _observer(self, pool: str) -> Callable[[str, float, str | None], None]:
        histograms = self._histograms
        base = {POOL_NAME: pool}

        def observe(kind: str, seconds: float, route: str | None) -> None:
            attributes = base if route is None else {**base, "pooltender.route": route}
            histograms[kind].record(seconds, attributes)

        return observe


def _reader(
    field: str, labels: tuple[tuple[str, str], ...]
) -> Callable[[PoolStats], Observation | None]:
    def read(stats: PoolStats) -> Observation | None:
        value = getattr(stats, field)
        if value is None:
            return None
        attributes: dict[str, str] = {POOL_NAME: stats.name}
        for key, label in labels:
            text = str(getattr(stats, label[1:])) if label.startswith("@") else label
            attributes[STATE if key == "state" else f"pooltender.{key}"] = text
        return Observation(value, attributes)

    return read
