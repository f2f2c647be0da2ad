"""The snapshot: one database's pool figures as typed data, and their JSON form.

This module is the contract every view renders: ``GET /debug/pool-stats`` (JSON),
Prometheus and OpenTelemetry metrics, the health log line, the dashboard page,
``pooltender top`` and ``pooltender size --from``. :class:`PoolStats` is built in one
place (:mod:`pooltender.snapshot`); nothing here knows of pools or engines.

Each scalar field of :class:`PoolStats` says what it is in its metadata (made by
:func:`gauge`, :func:`counter` or :func:`info`): a counter declared here appears in
the JSON document, in ``/metrics`` (its ``metric`` name, ``_total`` added by
Prometheus), in the health line and as a tile of the dashboard, with no other edit.

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

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "MAX_HELD_SHOWN",
    "MAX_ROUTES_SHOWN",
    "Durations",
    "HeldConnection",
    "LoopBlocks",
    "Metric",
    "PoolStats",
    "RouteStats",
    "Snapshot",
    "counters",
    "gauges",
]

MAX_ROUTES_SHOWN = 50
"""Routes in the JSON document (the busiest by total hold time); metrics export them all."""
MAX_HELD_SHOWN = 100
"""Held connections listed in the JSON document (the oldest); counts cover them all."""


@dataclass(frozen=True, slots=True)
class Metric:
    """How a field of :class:`PoolStats` is exported: name, labels, help. A label value
    ``"@field"`` is the value of that field of the same snapshot."""

    name: str
    help: str
    labels: tuple[tuple[str, str], ...] = ()


def gauge(metric: str | None, help: str, **labels: str) -> Any:
    """A field that is a level now (connections used, waiting, ...)."""
    exported = Metric(metric, help, tuple(labels.items())) if metric else None
    return field(metadata={"kind": "gauge", "metric": exported, "help": help})


def counter(metric: str, help: str, *, label: str | None = None) -> Any:
    """A field that only grows (refusals, checkouts, ...): also a dashboard tile."""
    return field(
        metadata={"kind": "counter", "metric": Metric(metric, help), "help": help, "label": label}
    )


def info(help: str) -> Any:
    """A descriptive field (name, URL, driver): in the JSON document only."""
    return field(metadata={"kind": "info", "help": help})


@dataclass(frozen=True, slots=True)
class Durations:
    """A duration distribution: count, percentiles and maximum, in seconds."""

    count: int = 0
    p50: float = 0.0
    p90: float = 0.0
    p99: float = 0.0
    max: float = 0.0
    sum: float = 0.0
    buckets: tuple[tuple[str, int], ...] = ()
    """Cumulative ``(le, count)`` pairs for Prometheus (``le`` as text, ``+Inf`` last);
    not in the JSON."""

    def to_json(self, *, detail: bool = False) -> dict[str, Any]:
        document: dict[str, Any] = {"count": self.count, "p50": self.p50, "p90": self.p90,
                                    "p99": self.p99, "max": self.max}  # fmt: skip
        if detail:  # what the other workers of a process group need to render metrics
            document.update(sum=self.sum, buckets=[list(b) for b in self.buckets])
        return document

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> Durations:
        data = data or {}

        def number(key: str) -> float:
            return float(data.get(key) or 0.0)

        return cls(
            count=int(data.get("count") or 0),
            p50=number("p50"),
            p90=number("p90"),
            p99=number("p99"),
            max=number("max"),
            sum=number("sum"),
            buckets=tuple((str(le), int(n)) for le, n in data.get("buckets") or ()),
        )


@dataclass(frozen=True, slots=True)
class RouteStats:
    """The connections one route template held, over the process's life."""

    route: str
    hold: Durations

    def to_json(self, *, detail: bool = False) -> dict[str, Any]:
        document: dict[str, Any] = {
            "route": self.route,
            "checkouts": self.hold.count,
            "hold_total": self.hold.sum,
            "hold_p50": self.hold.p50,
            "hold_p99": self.hold.p99,
            "hold_max": self.hold.max,
        }
        if detail:
            document["buckets"] = [list(b) for b in self.hold.buckets]
        return document

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RouteStats:
        hold = Durations(
            count=int(data.get("checkouts") or 0),
            sum=float(data.get("hold_total") or 0.0),
            p50=float(data.get("hold_p50") or 0.0),
            p99=float(data.get("hold_p99") or 0.0),
            max=float(data.get("hold_max") or 0.0),
            buckets=tuple((str(le), int(n)) for le, n in data.get("buckets") or ()),
        )
        return cls(str(data.get("route", "")), hold)


@dataclass(frozen=True, slots=True)
class HeldConnection:
    """A connection checked out now: by which route, since when, from where."""

    id: int
    route: str
    age: float
    site: str
    leak: bool
    after_response: bool

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> HeldConnection:
        return cls(
            id=int(data.get("id") or 0),
            route=str(data.get("route") or ""),
            age=float(data.get("age") or 0.0),
            site=str(data.get("site") or ""),
            leak=bool(data.get("leak")),
            after_response=bool(data.get("after_response")),
        )


@dataclass(frozen=True, slots=True)
class LoopBlocks:
    """Event-loop stalls past the threshold while this pool held connections."""

    count: int = 0
    max: float = 0.0

    def to_json(self) -> dict[str, float | int]:
        return {"count": self.count, "max": self.max}


@dataclass(frozen=True, slots=True)
class PoolStats:
    """One database's snapshot (see the module docstring for the pool figures)."""

    name: str = info("the database's name (primary, analytics, ...)")
    url: str = info("its URL, every credential masked")
    driver: str = info("backend+driver")
    server: str = info("where the server is: host:port/database, no credential")
    pool_size: int = gauge("db_client_connection_idle_max", "Most idle connections the pool keeps.")
    checked_out: int = gauge(
        "db_client_connection_count",
        "Connections open now, by state: idle (in the pool) or used (checked out).",
        state="used",
    )
    overflow: int = gauge(None, "connections open beyond pool_size")
    total: int = gauge(None, "connections open now")
    available: int = gauge(
        "db_client_connection_count",
        "Connections open now, by state: idle (in the pool) or used (checked out).",
        state="idle",
    )
    max: int | None = gauge("db_client_connection_max", "Most connections the pool may open.")
    waiting: int = gauge(
        "db_client_connection_pending_requests", "Checkouts waiting for a connection now."
    )
    max_waiting: int | None = gauge(None, "checkouts that may wait before the next is refused")
    server_connections_max: int | None = gauge(
        "pooltender_server_connections_max",
        "The server's usable connection slots (max_connections less reserved), read at "
        "start; compare with the fleet's sum of db_client_connection_max.",
        server="@server",
    )
    connections_leaking: int = gauge(
        "pooltender_connections_leaking", "Connections held now past the leak threshold."
    )
    timeouts: int = counter(
        "db_client_connection_timeouts",
        "Checkouts that found no connection within the pool timeout.",
    )
    rejected: int = counter(
        "pooltender_rejected",
        "Checkouts refused at once because the wait queue was full (answered 503).",
    )
    leaks_suspected: int = counter(
        "pooltender_leaks_suspected",
        "Connections held longer than the leak threshold.",
        label="leaks suspected",
    )
    checkouts: int = counter("pooltender_checkouts", "Connections checked out.")
    connections_created: int = counter(
        "pooltender_connections_created", "Connections opened.", label="opened"
    )
    connections_invalidated: int = counter(
        "pooltender_connections_invalidated",
        "Connections invalidated (lost, failed pre-ping, or invalidated by the application).",
        label="invalidated",
    )
    connections_reclaimed: int = counter(
        "pooltender_connections_reclaimed",
        "Checked-out connections never returned, reclaimed by the garbage collector.",
        label="reclaimed by GC",
    )
    held_after_response: int = counter(
        "pooltender_held_after_response",
        "Connections still held after their request's response started.",
        label="held after response",
    )
    failovers: int = counter(
        "pooltender_failovers",
        "Failovers detected: the server turned out read-only (a write refused as read-only, "
        "or a new connection to a standby); every connection to it was replaced.",
        label="failovers",
    )
    wait_time: Durations = field(default_factory=Durations)
    use_time: Durations = field(default_factory=Durations)
    connect_time: Durations = field(default_factory=Durations)
    routes: tuple[RouteStats, ...] = ()
    """Every route template the monitor counted, busiest (total hold time) first."""
    held: tuple[HeldConnection, ...] = ()
    """Every connection checked out now, oldest first."""
    loop_blocked: LoopBlocks = field(default_factory=LoopBlocks)

    def to_json(self, *, detail: bool = False) -> dict[str, Any]:
        """The per-database object of ``GET /debug/pool-stats``; ``detail``: also the
        histograms' buckets and every route (what metrics need, for another worker)."""
        document: dict[str, Any] = {f.name: getattr(self, f.name) for f in _SCALARS}
        routes = self.routes if detail else self.routes[:MAX_ROUTES_SHOWN]
        document.update(
            wait_time=self.wait_time.to_json(detail=detail),
            use_time=self.use_time.to_json(detail=detail),
            connect_time=self.connect_time.to_json(detail=detail),
            routes=[r.to_json(detail=detail) for r in routes],
            held=[h.to_json() for h in self.held[:MAX_HELD_SHOWN]],
            loop_blocked=self.loop_blocked.to_json(),
        )
        return document

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PoolStats:
        """Read one database's object of a ``/debug/pool-stats`` document (clients).

        ``ValueError`` when a figure the views show is missing or not a number."""
        missing = [key for key in _REQUIRED if key not in data]
        if missing:
            raise ValueError(f"no {', '.join(missing)}")
        scalars: dict[str, Any] = {}
        for f in _SCALARS:
            value = data.get(f.name)
            if f.metadata["kind"] == "info":
                scalars[f.name] = str(value or "")
            elif value is None and f.name in ("max", "max_waiting", "server_connections_max"):
                scalars[f.name] = None
            else:
                scalars[f.name] = int(value or 0)
        blocked = data.get("loop_blocked") or {}
        return cls(
            **scalars,
            wait_time=Durations.from_json(data.get("wait_time")),
            use_time=Durations.from_json(data.get("use_time")),
            connect_time=Durations.from_json(data.get("connect_time")),
            routes=tuple(RouteStats.from_json(r) for r in data.get("routes") or ()),
            held=tuple(HeldConnection.from_json(h) for h in data.get("held") or ()),
            loop_blocked=LoopBlocks(int(blocked.get("count") or 0), float(blocked.get("max") or 0)),
        )

    def health_line(self) -> str:
        """One ``key=value`` line on the pool's health (the periodic health log)."""
        parts = [f"pool database={self.name}"]
        parts += [
            f"{f.name}={getattr(self, f.name)}" for f in _SCALARS if f.metadata["kind"] != "info"
        ]
        parts += [f"wait_p99={self.wait_time.p99:.4f}", f"use_p99={self.use_time.p99:.4f}"]
        return " ".join(parts)


_SCALARS = tuple(f for f in dataclasses.fields(PoolStats) if "kind" in f.metadata)
# What a client (top, size --from) needs from each database's object.
_REQUIRED = ("checked_out", "available", "waiting", "checkouts", "timeouts", "rejected")


def gauges() -> tuple[dataclasses.Field[Any], ...]:
    """The gauge fields of :class:`PoolStats`, in declaration order."""
    return tuple(f for f in _SCALARS if f.metadata["kind"] == "gauge")


def counters() -> tuple[dataclasses.Field[Any], ...]:
    """The counter fields of :class:`PoolStats`, in declaration order."""
    return tuple(f for f in _SCALARS if f.metadata["kind"] == "counter")


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Every database of a service at one moment: ``GET /debug/pool-stats``."""

    generated_at: float
    """Unix time of the snapshot."""
    databases: Mapping[str, PoolStats]

    def to_json(self, *, detail: bool = False) -> dict[str, Any]:
        return {
            "generated_at": self.generated_at,
            "databases": {
                name: stats.to_json(detail=detail) for name, stats in self.databases.items()
            },
            # What each counter is, for views that show every counter (the dashboard).
            "counters": {
                f.name: {"label": f.metadata["label"] or f.name, "help": f.metadata["help"]}
                for f in counters()
            },
        }

    @classmethod
    def from_json(cls, document: Mapping[str, Any]) -> Snapshot:
        """Read a ``/debug/pool-stats`` document; ``ValueError`` if it is not one."""
        databases = document.get("databases")
        if not isinstance(databases, Mapping):
            raise ValueError("not a pool-stats document (no 'databases' object)")
        try:
            generated_at = float(document["generated_at"])
            if not 0 <= generated_at < 1e11:  # a Unix time (up to the year 5138)
                raise ValueError(f"generated_at {generated_at!r} is not a time")
            return cls(
                generated_at=generated_at,
                databases={str(n): PoolStats.from_json(d) for n, d in databases.items()},
            )
        except (KeyError, TypeError, AttributeError, OverflowError) as exc:
            raise ValueError(f"not a pool-stats document ({exc!r})") from None
