import random
import sys

import pytest

from pooltender.monitor.histogram import BOUNDS, PROMETHEUS_BOUNDS, Histogram
from pooltender.snapshot import durations


def test_percentiles_of_a_uniform_distribution_are_within_a_bucket() -> None:
    rng = random.Random(7)
    h = Histogram()
    values = sorted(rng.uniform(0.001, 1.0) for _ in range(20_000))
    for v in values:
        h.record(v)
    for q in (0.5, 0.9, 0.99):
        exact = values[int(q * len(values)) - 1]
        assert h.percentile(q) == pytest.approx(exact, rel=0.05)
    assert h.count == 20_000
    assert h.max == values[-1]
    assert h.sum == pytest.approx(sum(values))


def test_empty_histogram_summary_is_zero() -> None:
    assert durations(Histogram()).to_json() == {
        "count": 0, "p50": 0.0, "p90": 0.0, "p99": 0.0, "max": 0.0
    }  # fmt: skip


def test_percentile_never_exceeds_the_largest_value() -> None:
    h = Histogram()
    h.record(0.0031)
    assert h.percentile(0.5) <= 0.0031
    assert h.percentile(0.99) == pytest.approx(0.0031, rel=0.3)


def test_memory_does_not_grow_with_observations() -> None:
    h = Histogram()
    size = sys.getsizeof(h.counts)
    for i in range(100_000):
        h.record(i * 1e-5)
    h.record(1e9)  # beyond the last bound: the overflow bucket
    assert sys.getsizeof(h.counts) == size
    assert len(h.counts) == len(BOUNDS) + 1
    assert h.counts[-1] == 1


def test_merge_adds_counts_sums_and_keeps_max() -> None:
    a, b = Histogram(), Histogram()
    a.record(0.01)
    b.record(0.2)
    b.record(0.3)
    merged = Histogram.merged([a, b])
    assert (merged.count, merged.max) == (3, 0.3)
    assert merged.sum == pytest.approx(0.51)


def test_prometheus_buckets_are_cumulative_and_exact_at_bounds() -> None:
    h = Histogram()
    for v in (0.001, 0.001, 0.0011, 0.5, 100.0):
        h.record(v)
    buckets = dict(h.prometheus_buckets())
    assert buckets["0.001"] == 2  # le is inclusive
    assert buckets["0.0025"] == 3
    assert buckets["0.5"] == 4
    assert buckets["60.0"] == 4
    assert buckets["+Inf"] == 5
    counts = [n for _, n in h.prometheus_buckets()]
    assert counts == sorted(counts)
    assert all(b in BOUNDS for b in PROMETHEUS_BOUNDS)


def test_bucket_layout_is_ten_per_decade_from_a_microsecond() -> None:
    assert len(BOUNDS) == 101
    assert (BOUNDS[0], BOUNDS[10], BOUNDS[-1]) == (1e-6, 1e-5, 1e4)
    assert len(Histogram().counts) == 102
