"""Every worker of a process group in one scrape: snapshots shared through a directory.

Behind ``uvicorn --workers N`` or gunicorn, a scrape of the shared port reaches one
worker at random, so "scrape every worker" cannot be done. With
``POOLTENDER_METRICS_DIR`` set (a directory the workers share, empty or pooltender's
own), each worker writes its snapshot there every :data:`INTERVAL` seconds and at each
scrape (``<dir>/pooltender-<pid>.json``, written to a temporary file then renamed, so a
reader never sees half a file), and the worker that answers ``/metrics`` renders every
worker's, each with its ``worker`` label. A file whose process is gone is deleted; one
not rewritten for :data:`STALE` seconds (a process stopped hard, another machine's
file on a shared volume) is left out. prometheus_client's multiprocess mode does the
same for its own metric types, with its own files; it cannot carry a collector's.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from .stats import Snapshot

__all__ = ["INTERVAL", "STALE", "Publisher", "WorkerSnapshots"]

logger = logging.getLogger("pooltender.workers")

INTERVAL = 1.0
"""Seconds between two publications of a worker's snapshot."""
STALE = 30.0
"""Seconds after which a worker's file that nobody rewrote is left out."""

_PREFIX = "pooltender-"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    return True


class WorkerSnapshots:
    """The snapshots of the workers sharing ``directory``."""

    def __init__(self, directory: str | Path, *, pid: int | None = None) -> None:
        self.directory = Path(directory)
        self._pid = pid

    @property
    def pid(self) -> int:
        """This worker's pid, read when asked: an app set up before a fork (gunicorn
        ``--preload``) publishes under each worker's own."""
        return os.getpid() if self._pid is None else self._pid

    @property
    def own_file(self) -> Path:
        return self.directory / f"{_PREFIX}{self.pid}.json"

    def publish(self, snapshot: Snapshot) -> None:
        """Write this worker's snapshot (atomically: a reader sees the old or the new)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        document = json.dumps(snapshot.to_json(detail=True), separators=(",", ":"))
        temporary = self.directory / f".{_PREFIX}{self.pid}.{threading.get_ident()}.tmp"
        temporary.write_text(document)
        os.replace(temporary, self.own_file)

    def withdraw(self) -> None:
        """Remove this worker's file (it stops)."""
        with contextlib.suppress(FileNotFoundError):
            self.own_file.unlink()

    def collect(self) -> Iterator[tuple[int, Snapshot]]:
        """``(pid, snapshot)`` of every live worker, this one included."""
        now = time.time()
        for path in sorted(self.directory.glob(f"{_PREFIX}*.json")):
            try:
                pid = int(path.stem.removeprefix(_PREFIX))
            except ValueError:
                continue
            if pid != self.pid and not _alive(pid):
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()  # a worker that exited without withdrawing
                continue
            try:
                snapshot = Snapshot.from_json(json.loads(path.read_text()))
            except (OSError, ValueError) as exc:  # vanished meanwhile, or not ours
                logger.debug("skipping %s: %s", path.name, exc)
                continue
            if pid != self.pid and now - snapshot.generated_at > STALE:
                continue
            yield pid, snapshot


class Publisher:
    """A daemon thread publishing this worker's snapshot every :data:`INTERVAL` seconds,
    so a worker that is never scraped is still in the others' answers."""

    def __init__(self, snapshots: WorkerSnapshots, snapshot: Callable[[], Snapshot]) -> None:
        self.snapshots = snapshots
        self._snapshot = snapshot
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pooltender-publisher", daemon=True)

    def start(self) -> None:
        self.snapshots.publish(self._snapshot())
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        self.snapshots.withdraw()

    def _run(self) -> None:
        while not self._stop.wait(INTERVAL):
            try:
                self.snapshots.publish(self._snapshot())
            except Exception:  # a full disk must not kill the worker; say why once a pass
                logger.exception("pooltender could not publish this worker's snapshot")
