"""The failover-test pair itself (scripts/pg-cluster.sh, tests/support/cluster.py).

What the failover tests will rely on: an acknowledged write is on the replica at once,
and the two shapes of a failover leave the old primary's address refusing writes with
SQLSTATE 25006 while the promoted node takes them.
"""

from __future__ import annotations

import threading
import time
import uuid

import psycopg
import pytest
from psycopg import errors

from tests.support.cluster import Cluster, ClusterError

pytestmark = pytest.mark.integration

TABLE = "cluster_ledger"


def create_ledger(cluster: Cluster) -> None:
    with cluster.connect(cluster.primary_port) as conn:
        conn.execute(f"CREATE TABLE {TABLE} (id uuid NOT NULL, at timestamptz DEFAULT now())")


def write(conn: psycopg.Connection) -> uuid.UUID:
    key = uuid.uuid4()
    conn.execute(f"INSERT INTO {TABLE} (id) VALUES (%s)", (key,))
    return key


def count(cluster: Cluster, port: int, key: uuid.UUID) -> int:
    with cluster.connect(port) as conn:
        row = conn.execute(f"SELECT count(*) FROM {TABLE} WHERE id = %s", (key,)).fetchone()
    assert row is not None
    return int(row[0])


def test_a_write_acknowledged_on_the_primary_is_on_the_replica_at_once(cluster: Cluster) -> None:
    assert cluster.role(cluster.primary_port) == "primary"
    assert cluster.role(cluster.replica_port) == "standby"
    create_ledger(cluster)
    with cluster.connect(cluster.primary_port) as conn:
        states = conn.execute("SELECT application_name, sync_state FROM pg_stat_replication")
        assert states.fetchall() == [(f"pg{cluster.replica_port}", "sync")]
        keys = [write(conn) for _ in range(20)]
    for key in keys:  # each read right after its commit was acknowledged
        assert count(cluster, cluster.replica_port, key) == 1


def test_a_commit_is_acknowledged_only_once_the_replica_applied_it(cluster: Cluster) -> None:
    create_ledger(cluster)
    with cluster.connect(cluster.replica_port) as replica:
        replica.execute("SELECT pg_wal_replay_pause()")
        with cluster.connect(cluster.primary_port) as conn:
            pid = conn.info.backend_pid
            keys: list[uuid.UUID] = []
            writer = threading.Thread(target=lambda: keys.append(write(conn)))
            writer.start()
            try:
                with cluster.connect(cluster.primary_port) as admin:
                    deadline = time.monotonic() + 10
                    wait_event = None
                    while wait_event != "SyncRep" and time.monotonic() < deadline:
                        row = admin.execute(
                            "SELECT wait_event FROM pg_stat_activity WHERE pid = %s", (pid,)
                        ).fetchone()
                        wait_event = row[0] if row else None
                        time.sleep(0.02)
                assert wait_event == "SyncRep"  # the commit waits for the paused replica
                assert writer.is_alive() and not keys
            finally:
                replica.execute("SELECT pg_wal_replay_resume()")
                writer.join(10)
        assert not writer.is_alive()
        assert len(keys) == 1
        assert count(cluster, cluster.replica_port, keys[0]) == 1


def test_shape_a_open_sessions_of_the_demoted_primary_refuse_writes(cluster: Cluster) -> None:
    old, new = cluster.primary_port, cluster.replica_port
    create_ledger(cluster)
    with cluster.connect(old) as session:  # opened before the incident, kept across it
        before = write(session)
        cluster.demote_in_place(old)
        cluster.promote(new)

        with pytest.raises(errors.ReadOnlySqlTransaction) as refused:
            write(session)
        assert refused.value.sqlstate == "25006"
        reads = session.execute(f"SELECT count(*) FROM {TABLE} WHERE id = %s", (before,))
        assert reads.fetchone() == (1,)  # the session is still open, and reads

    assert cluster.role(new) == "primary"
    assert cluster.role(old) == "primary"  # still not in recovery: only read-only
    assert count(cluster, new, before) == 1  # acknowledged before the switch: not lost
    with cluster.connect(new) as conn:
        after = write(conn)
    assert count(cluster, new, after) == 1
    assert count(cluster, old, after) == 0  # the two have parted


def test_shape_b_the_old_primary_rejoins_on_its_address_as_a_standby(cluster: Cluster) -> None:
    old, new = cluster.primary_port, cluster.replica_port
    create_ledger(cluster)
    with cluster.connect(old) as session:
        before = write(session)
        cluster.stop_node(old)
        with pytest.raises(psycopg.OperationalError):  # its sessions ended with it
            write(session)
    cluster.promote(new)
    with cluster.connect(new) as conn:
        during = write(conn)  # while the old primary is down
    cluster.rejoin_as_standby(old)

    assert cluster.role(old) == "standby"
    assert cluster.role(new) == "primary"
    with cluster.connect(old) as reconnected:
        row = reconnected.execute("SELECT pg_is_in_recovery()").fetchone()
        assert row == (True,)
        with pytest.raises(errors.ReadOnlySqlTransaction) as refused:
            write(reconnected)
        assert refused.value.sqlstate == "25006"
    with cluster.connect(new) as conn:
        after = write(conn)
    for key in (before, during, after):  # synchronous again: on the rejoined standby at once
        assert count(cluster, new, key) == 1
        assert count(cluster, old, key) == 1


def test_reset_restores_the_initial_roles_and_data(cluster: Cluster) -> None:
    create_ledger(cluster)
    cluster.stop_node(cluster.primary_port, "immediate")
    cluster.promote(cluster.replica_port)
    cluster.rejoin_as_standby(cluster.primary_port)

    assert cluster.reset() < cluster.timeout
    assert cluster.role(cluster.primary_port) == "primary"
    assert cluster.role(cluster.replica_port) == "standby"
    for port in (cluster.primary_port, cluster.replica_port):
        with cluster.connect(port) as conn:
            assert conn.execute("SELECT to_regclass(%s)", (TABLE,)).fetchone() == (None,)
    with cluster.connect(cluster.primary_port) as conn:
        states = conn.execute("SELECT application_name, sync_state FROM pg_stat_replication")
        assert states.fetchall() == [(f"pg{cluster.replica_port}", "sync")]


def test_a_step_that_cannot_be_done_names_the_node(cluster: Cluster) -> None:
    node = rf"127\.0\.0\.1:{cluster.primary_port}"
    with pytest.raises(ClusterError, match=f"{node} is not a standby"):
        cluster.promote(cluster.primary_port)
