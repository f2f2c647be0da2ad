"""A fixed-bucket histogram of durations: bounded memory, O(log n) record, mergeable.

Bucket bounds are log-spaced, ten per decade (mantissas 1, 1.2, 1.5, 2, 2.5, 3, 4,
5, 6, 8) from 1 microsecond to 10,000 seconds: 102 counters whatever the number of
observations. A percentile is interpolated inside its bucket and clamped to the
largest value seen, so its relative error is at most the bucket's width (about 25%
at worst, usually far less). The Prometheus bounds (:data:`PROMETHEUS_BOUNDS`) are
a subset of the bucket bounds, so exported buckets are exact, not re-binned.

Writers are not synchronised: a histogram is written by one thread only (see
:mod:`pooltender.monitor.monitor`), and readers merge copies.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable

__all__ = ["BOUNDS", "PROMETHEUS_BOUNDS", "Histogram"]

_MANTISSAS = ("1", "1.2", "1.5", "2", "2.5", "3", "4", "5", "6", "8")

BOUNDS: tuple[float, ...] = (
    *(float(f"{m}e{e}") for e in range(-6, 4) for m in _MANTISSAS),
    1e4,
)
"""Upper bounds (inclusive) of the buckets, in seconds; one more bucket holds the rest."""

PROMETHEUS_BOUNDS: tuple[float, ...] = (
    1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 5e-2,
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
)  # fmt: skip
"""The ``le`` bounds exported to Prometheus (each is one of :data:`BOUNDS`)."""

_PROM_INDEX = tuple(BOUNDS.index(b) for b in PROMETHEUS_BOUNDS)


class Histogram:
    """Counts of observations per bucket, plus their count, sum and maximum."""

    __slots__ = ("count", "counts", "max", "sum")

    def __init__(self) -> None:
        self.counts = [0] * (len(BOUNDS) + 1)
        self.count = 0
        self.sum = 0.0
        self.max = 0.0

    def record(self, value: float) -> None:
        self.counts[bisect_left(BOUNDS, value)] += 1
        self.count += 1
        self.sum += value
        if value > self.max:
            self.max = value

    def merge(self, other: Histogram) -> None:
        """Add ``other``'s observations to this histogram."""
        counts = self.counts
        for i, n in enumerate(other.counts):
            if n:
                counts[i] += n
        self.count += other.count
        self.sum += other.sum
        if other.max > self.max:
            self.max = other.max

    @classmethod
    def merged(cls, histograms: Iterable[Histogram]) -> Histogram:
        result = cls()
        for h in histograms:
            result.merge(h)
        return result

    def percentile(self, q: float) -> float:
        """The value below which a fraction ``q`` (0..1) of observations fall; 0 if empty."""
        if self.count == 0:
            return 0.0
        rank = q * self.count
        seen = 0
        for i, n in enumerate(self.counts):
            if n and seen + n >= rank:
                low = BOUNDS[i - 1] if i > 0 else 0.0
                high = BOUNDS[i] if i < len(BOUNDS) else self.max
                value = low + (high - low) * ((rank - seen) / n)
                return min(value, self.max)
            seen += n
        return self.max

    def prometheus_buckets(self) -> list[tuple[str, int]]:
        """Cumulative ``(le, count)`` pairs over :data:`PROMETHEUS_BOUNDS`, then ``+Inf``."""
        result: list[tuple[str, int]] = []
        cumulative = 0
        start = 0
        for bound, index in zip(PROMETHEUS_BOUNDS, _PROM_INDEX, strict=True):
            cumulative += sum(self.counts[start : index + 1])
            start = index + 1
            result.append((repr(bound), cumulative))
        result.append(("+Inf", self.count))
        return result
