"""A PostgreSQL primary and its synchronous replica, and the two shapes of a failover.

``scripts/pg-cluster.sh`` builds and runs the pair: two clusters of their own on
127.0.0.1 (ports ``PG_PRIMARY_PORT``/``PG_REPLICA_PORT``, 5441/5442), never the shared
server on 5432. :class:`Cluster` drives it from a test::

    with Cluster() as cluster:                    # up: built once, then reused; down at exit
        old, new = cluster.primary_port, cluster.replica_port
        # (a) the old primary turns read-only under its open sessions, the replica is promoted
        cluster.demote_in_place(old)
        cluster.promote(new)
        cluster.reset()                           # initial roles, no data of the test
        # (b) the old primary stops, the replica is promoted, the old one comes back on its
        # own address as a standby of the new primary
        cluster.stop_node(old)
        cluster.promote(new)
        cluster.rejoin_as_standby(old)

Every wait is bounded and fails with :class:`ClusterError` naming the node and what it
waited for.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Callable
from typing import Literal

import psycopg

from .service import ROOT

__all__ = ["SCRIPT", "Cluster", "ClusterError", "Role"]

SCRIPT = ROOT / "scripts" / "pg-cluster.sh"

Role = Literal["primary", "standby"]


class ClusterError(RuntimeError):
    """The pair did not do what a step asked within its bound."""


class Cluster:
    """The pair of ``scripts/pg-cluster.sh``; ``start()`` brings it up, ``stop()`` removes it."""

    def __init__(
        self,
        *,
        primary_port: int | None = None,
        replica_port: int | None = None,
        directory: str | None = None,
        timeout: float = 30.0,
    ) -> None:
        self.primary_port = primary_port or int(os.environ.get("PG_PRIMARY_PORT", "5441"))
        self.replica_port = replica_port or int(os.environ.get("PG_REPLICA_PORT", "5442"))
        self.directory = directory or os.environ.get("PG_CLUSTER_DIR")
        self.timeout = timeout
        self.last_reset: float | None = None  # seconds the last reset() took

    # -- addresses --------------------------------------------------------------------

    def dsn(self, port: int, **options: str | int) -> str:
        """A libpq DSN of database ``test`` on the node at ``port``."""
        params: dict[str, str | int] = {"host": "127.0.0.1", "port": port, "dbname": "test"}
        params.update(user="postgres", connect_timeout=5)
        params.update(options)
        return " ".join(f"{key}={value}" for key, value in params.items())

    def url(self, port: int, driver: str = "asyncpg") -> str:
        """A SQLAlchemy URL of database ``test`` on the node at ``port``."""
        return f"postgresql+{driver}://postgres@127.0.0.1:{port}/test"

    def connect(self, port: int, *, autocommit: bool = True) -> psycopg.Connection:
        return psycopg.connect(self.dsn(port), autocommit=autocommit)

    # -- the pair ---------------------------------------------------------------------

    def start(self) -> Cluster:
        """Bring the pair up (idempotent); prints the script's line per node."""
        print(self._script("up", timeout=4 * self.timeout), end="")
        return self

    def stop(self) -> None:
        """Stop both nodes and remove their directory."""
        self._script("down")

    def reset(self) -> float:
        """Back to the initial roles and data (the primary on ``primary_port``); the seconds
        it took, also printed and kept in ``last_reset``."""
        started = time.monotonic()
        self._script("reset", timeout=4 * self.timeout)
        self.last_reset = time.monotonic() - started
        print(f"cluster: reset in {self.last_reset:.2f} s")
        return self.last_reset

    def role(self, port: int) -> Role:
        try:
            return "standby" if self._in_recovery(port) else "primary"
        except psycopg.OperationalError as exc:
            raise ClusterError(f"node {_node(port)} does not answer: {exc}") from exc

    # -- failover steps ---------------------------------------------------------------

    def demote_in_place(self, port: int) -> None:
        """Shape (a): the primary on ``port`` turns read-only; its sessions stay open.

        ``default_transaction_read_only`` set by ``ALTER SYSTEM`` and a reload: a session
        takes a reload between two statements, so every transaction an open session
        starts from now on is read-only (a write: SQLSTATE 25006). A transaction already
        open keeps writing; committed after ``promote``, it waits for the synchronous
        standby that is gone, until cancelled, and is then committed on this node only
        (PostgreSQL warns; the client sees no error). The postmaster signals every
        backend when it reloads, before it starts another one, so once a new session
        sees the setting, every open session has the reload pending.
        """
        with self.connect(port) as conn:
            conn.execute("ALTER SYSTEM SET default_transaction_read_only = on")
            conn.execute("SELECT pg_reload_conf()")
        self._wait(
            f"node {_node(port)} has default_transaction_read_only on",
            lambda: self._setting(port, "default_transaction_read_only") == "on",
        )

    def promote(self, port: int) -> None:
        """The standby on ``port`` becomes a primary; returns once it commits writes.

        The script clears its ``synchronous_standby_names`` first: the new primary has no
        standby, and a commit would otherwise wait for one forever.
        """
        self._script("promote", str(port))
        self._wait(f"node {_node(port)} commits writes", lambda: self._commits(port))

    def stop_node(self, port: int, mode: Literal["fast", "immediate"] = "fast") -> None:
        """Stop one node: ``fast`` ends its sessions cleanly, ``immediate`` is a crash."""
        self._script("stop-node", str(port), mode)

    def rejoin_as_standby(self, port: int) -> None:
        """Shape (b): the node on ``port`` (stopped, or still up after shape (a)) comes back
        on its own address as a standby of the other node, which must be the primary.

        ``pg_rewind`` against the new primary (a fresh ``pg_basebackup`` when the rewind
        fails), then ``standby.signal`` and ``primary_conninfo``; the new primary then names
        it in ``synchronous_standby_names``, so the pair is synchronous again.
        """
        self._script("rejoin", str(port))
        self._wait(f"node {_node(port)} is a standby", lambda: self._in_recovery(port))

    # -- helpers ----------------------------------------------------------------------

    def _script(self, *args: str, timeout: float | None = None) -> str:
        env = dict(os.environ)
        env["PG_PRIMARY_PORT"] = str(self.primary_port)
        env["PG_REPLICA_PORT"] = str(self.replica_port)
        env["PG_CLUSTER_TIMEOUT"] = str(int(self.timeout))
        if self.directory:
            env["PG_CLUSTER_DIR"] = self.directory
        bound = timeout or 2 * self.timeout
        name = "pg-cluster.sh " + " ".join(args)
        try:
            done = subprocess.run(
                ["bash", str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=bound
            )
        except subprocess.TimeoutExpired as exc:
            raise ClusterError(f"{name}: not done after {bound:g} s") from exc
        if done.returncode != 0:
            output = (done.stderr or done.stdout).strip()
            raise ClusterError(f"{name} failed ({done.returncode}): {output}")
        return done.stdout

    def _in_recovery(self, port: int) -> bool:
        with self.connect(port) as conn:
            row = conn.execute("SELECT pg_is_in_recovery()").fetchone()
        assert row is not None
        return bool(row[0])

    def _setting(self, port: int, name: str) -> str:
        with self.connect(port) as conn:
            row = conn.execute("SELECT current_setting(%s)", (name,)).fetchone()
        assert row is not None
        return str(row[0])

    def _commits(self, port: int) -> bool:
        """Commit one write on ``port`` as a client would (same synchronous_commit)."""
        with self.connect(port) as conn:
            self._bounded(conn, "CREATE TABLE IF NOT EXISTS cluster_probe (at timestamptz)")
            self._bounded(conn, "INSERT INTO cluster_probe VALUES (now())")
        return True

    def _bounded(self, conn: psycopg.Connection, statement: str) -> None:
        """Run ``statement``; a commit that waits for a synchronous standby is cancelled after
        a third of ``timeout`` (PostgreSQL then warns: committed, not replicated), and that
        is an error here, not a retry."""
        warnings: list[str] = []
        conn.add_notice_handler(lambda diag: warnings.append(diag.message_primary or ""))
        timer = threading.Timer(self.timeout / 3, conn.cancel)
        timer.start()
        try:
            conn.execute(statement)
        finally:
            timer.cancel()
        if any("synchronous replication" in message for message in warnings):
            port = conn.info.port
            raise ClusterError(
                f"node {_node(port)}: a commit waited for a synchronous standby that does"
                f" not answer ({'; '.join(warnings)})"
            )

    def _wait(self, what: str, check: Callable[[], bool]) -> None:
        deadline = time.monotonic() + self.timeout
        last: Exception | None = None
        while True:
            try:
                if check():
                    return
            except psycopg.Error as exc:  # not up yet, still read-only, ...
                last = exc
            if time.monotonic() >= deadline:
                reason = f"; last error: {last}" if last is not None else ""
                raise ClusterError(f"{what}: not so after {self.timeout:g} s{reason}")
            time.sleep(0.05)

    def __enter__(self) -> Cluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _node(port: int) -> str:
    return f"127.0.0.1:{port}"
