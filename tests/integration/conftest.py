"""Integration tests need the real servers; they fail (never skip) when one is missing."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.cluster import Cluster


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration/" in str(item.path).replace("\\", "/"):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def cluster_pair() -> Iterator[Cluster]:
    """The primary/replica pair of ``scripts/pg-cluster.sh``: up once for the whole run
    (the first run on a machine builds it), down at the end."""
    with Cluster() as pair:
        yield pair


@pytest.fixture
def cluster(cluster_pair: Cluster) -> Cluster:
    """The pair reset to its initial roles and data, whatever an earlier test did to it."""
    cluster_pair.reset()
    return cluster_pair
