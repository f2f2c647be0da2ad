"""The watchdog thread: event-loop blocking, leak scans, and every log line of the monitor.

One daemon thread per event loop, shared by the databases started on it. Every
``tick`` it:

- checks the loop's heartbeat (a ``call_later`` chain on the loop) and samples the
  loop thread's stack (``sys._current_frames()``). When the loop has not beaten for
  longer than ``loop_block_threshold`` *and* every sample across that threshold found
  it in the same callback, while connections are held, it logs one WARNING naming the
  route and the user frame the loop is stuck in, and counts the episode. A late
  heartbeat alone (a loop busy with many short callbacks under CPU load) is no block:
  it names no frame. "The same callback": on the standard loop, the same frame of
  ``Handle._run`` (each callback gets a new one); on a loop that runs callbacks
  without a Python frame (uvloop), the same stack of frames with the innermost at the
  same instruction. The time counted in that callback is the loop thread's CPU time
  in it plus the time it slept in a call (Linux: ``/proc/self/task/<tid>``; wall time
  elsewhere), not the time it waited for a CPU: a thread the OS starves on saturated
  cores is not taken for one stuck in its code. Without a per-callback frame the
  same frames could also mean a callback that came back to the same point, so there
  a gap between two samples longer than ``max(3 ticks, threshold / 2)`` (the watchdog
  itself starved) starts the count again;
- scans each pool's held table for connections held past ``leak_threshold``
  (WARNING once, with the checkout site and stack);
- writes the messages the pool listeners queued (leak returned, reclaimed by the
  garbage collector, held across the response) — the listeners never log themselves;
- every ``health_log_interval`` seconds (0: never), logs one line per pool.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import Any, ClassVar, NamedTuple

from ..compat import HANDLE_RUN_CODE, current_frames
from .context import request_of_task
from .monitor import Checkout, PoolMonitor
from .sites import capture, current_greenlet, format_site, format_stack, user_frame

__all__ = ["Watchdog"]

logger = logging.getLogger("pooltender.monitor")
health_logger = logging.getLogger("pooltender.health")


class _Running:
    """What the loop thread was seen running: a stack of frames (kept alive, so that
    identity means the same frames) and, without a per-callback frame, the innermost
    frame's instruction; and how long the thread has really spent in it."""

    __slots__ = ("frames", "instruction", "seen", "spent", "thread")

    def __init__(self, frame: FrameType | None, now: float, thread: ThreadTime | None) -> None:
        frames = []
        while frame is not None:
            frames.append(frame)
            frame = frame.f_back
        self.frames = tuple(frames)
        per_callback = HANDLE_RUN_CODE is not None and any(
            f.f_code is HANDLE_RUN_CODE for f in self.frames
        )
        self.instruction = None if per_callback or not frames else frames[0].f_lasti
        self.seen = now
        self.thread = thread
        self.spent = 0.0

    def same(self, other: _Running) -> bool:
        return (
            len(self.frames) == len(other.frames)
            and all(a is b for a, b in zip(self.frames, other.frames, strict=True))
            and self.instruction == other.instruction
        )

    def advance(self, now: float, thread: ThreadTime | None) -> float:
        """Add the time since the last sample that the thread spent in this callback:
        its CPU time, and the wall time while it slept in a call (``time.sleep``, a
        blocking read); not the time it was runnable but waiting for a CPU."""
        before, self.thread = self.thread, thread
        if before is None or thread is None:
            self.spent += now - self.seen  # no thread figures here: wall time
        else:
            self.spent += max(0.0, thread.cpu - before.cpu)
            if before.sleeping and thread.sleeping:
                self.spent += now - self.seen
        self.seen = now
        return self.spent


class ThreadTime(NamedTuple):
    cpu: float  # seconds on a CPU
    sleeping: bool  # in an interruptible or uninterruptible wait (a blocking call)


def thread_time(native_id: int) -> ThreadTime | None:
    """A thread's CPU time and state, from Linux ``/proc/self/task/<tid>``; ``None``
    elsewhere."""
    try:
        with open(f"/proc/self/task/{native_id}/schedstat", "rb") as file:
            cpu = int(file.read().split()[0]) / 1e9
        with open(f"/proc/self/task/{native_id}/stat", "rb") as file:
            state = file.read().rpartition(b")")[2].split()[0]
    except (OSError, ValueError, IndexError):
        return None
    return ThreadTime(cpu, state in (b"S", b"D"))


class Watchdog:
    """See the module docstring. Start with :meth:`acquire`, end with :meth:`release`."""

    _running: ClassVar[dict[asyncio.AbstractEventLoop, Watchdog]] = {}
    _registry_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        *,
        loop_block_threshold: float = 0.1,
        health_log_interval: float = 0.0,
    ) -> None:
        self.loop = loop
        self.threshold = loop_block_threshold
        self.health_log_interval = health_log_interval
        self.health_lines: dict[PoolMonitor, Callable[[], str]] = {}
        self.monitors: list[PoolMonitor] = []
        self.beat_interval = max(0.005, loop_block_threshold / 4) if loop_block_threshold else 0.0
        self.tick = max(0.005, min(0.25, self.beat_interval or 0.25))
        self._last_beat = time.monotonic()
        self._late = 0.0
        self._episode: tuple[float, list[PoolMonitor]] | None = None
        self._in_callback: _Running | None = None
        self._max_gap = max(3 * self.tick, loop_block_threshold / 2)
        self._reported_routes: set[tuple[str, str]] = set()
        self._next_health = time.monotonic() + health_log_interval
        self._stop = threading.Event()
        self._handle: asyncio.TimerHandle | None = None
        self._loop_thread = threading.get_ident()  # built on the loop's thread (acquire)
        self._loop_native_id = threading.get_native_id()
        self._loop_greenlet = current_greenlet()
        self._thread = threading.Thread(target=self._run, name="pooltender-watchdog", daemon=True)

    # -- lifecycle -----------------------------------------------------------------------

    @classmethod
    def acquire(
        cls,
        monitor: PoolMonitor,
        *,
        loop_block_threshold: float,
        health_log_interval: float,
        health_line: Callable[[], str],
    ) -> Watchdog:
        """The running loop's watchdog (started if needed), now also watching ``monitor``."""
        loop = asyncio.get_running_loop()
        with cls._registry_lock:
            dog = cls._running.get(loop)
            if dog is None:
                dog = cls(
                    loop,
                    loop_block_threshold=loop_block_threshold,
                    health_log_interval=health_log_interval,
                )
                cls._running[loop] = dog
                dog._start()
            dog.monitors = [*dog.monitors, monitor]
            dog.health_lines[monitor] = health_line
        return dog

    def release(self, monitor: PoolMonitor) -> None:
        """Stop watching ``monitor``; the last one stops the thread (after a final pass)."""
        with self._registry_lock:
            self.monitors = [m for m in self.monitors if m is not monitor]
            last = not self.monitors
            if last:
                self._running.pop(self.loop, None)
        self._drain([monitor])
        self.health_lines.pop(monitor, None)
        if last:
            self._stop.set()
            if self._handle is not None:
                self._handle.cancel()
            self._thread.join()

    def _start(self) -> None:
        if self.beat_interval:
            self._handle = self.loop.call_later(self.beat_interval, self._beat, time.monotonic())
        self._thread.start()

    def _beat(self, scheduled: float) -> None:
        now = time.monotonic()
        self._late = now - scheduled - self.beat_interval
        self._last_beat = now
        if not self._stop.is_set():
            self._handle = self.loop.call_later(self.beat_interval, self._beat, now)

    # -- the thread ----------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.wait(self.tick):
            try:
                self.check_once()
            except Exception:  # never let the watchdog die silently
                logger.exception("pooltender watchdog pass failed")

    def check_once(self) -> None:
        """One pass: loop heartbeat, leak scan, queued reports, health lines."""
        monitors = self.monitors
        if self.beat_interval:
            self._check_loop(monitors)
        for monitor in monitors:
            for held in monitor.scan_leaks():
                self._report_leak(monitor, held)
        self._drain(monitors)
        if self.health_log_interval and time.monotonic() >= self._next_health:
            self._next_health = time.monotonic() + self.health_log_interval
            for monitor in monitors:
                line = self.health_lines.get(monitor)
                if line is not None:
                    health_logger.info(line())

    def _sample_loop(self) -> tuple[float, FrameType | None]:
        """The loop thread's frame now, and for how long it has been in this callback."""
        now = time.monotonic()
        frame = current_frames().get(self._loop_thread)
        thread = thread_time(self._loop_native_id)
        seen = _Running(frame, now, thread)
        last = self._in_callback
        gap = now - last.seen if last is not None else 0.0
        if (
            last is None
            or not last.same(seen)
            or (last.instruction is not None and gap > self._max_gap)
        ):
            self._in_callback = seen  # something else, or a gap in what this thread saw
            return 0.0, frame
        return last.advance(now, thread), frame

    def _check_loop(self, monitors: list[PoolMonitor]) -> None:
        in_callback, frame = self._sample_loop()
        silence = time.monotonic() - self._last_beat
        episode = self._episode
        if episode is not None:
            started, affected = episode
            if self._last_beat > started:  # the loop beat again: the episode is over
                blocked = max(self._late, 0.0)
                for monitor in affected:
                    monitor.loop_blocked_ended(blocked)
                self._episode = None
            return
        if silence < self.threshold + self.beat_interval:
            return
        if in_callback < self.threshold:
            return  # late, but not stuck in one callback (yet): no frame to blame
        holding = [m for m in monitors if m.held]
        self._episode = (self._last_beat, holding)
        if not holding:
            return
        for monitor in holding:
            monitor.loop_blocked_started()
        stuck = user_frame(frame, root=self._loop_greenlet)
        where = format_site((stuck,)) if stuck is not None else "?"
        stack = format_stack(capture(frame, root=self._loop_greenlet)) if frame is not None else ""
        route = self._current_route(holding)
        held = sum(len(m.held) for m in holding)
        logger.warning(
            "event loop blocked for %.2fs so far, in %s at %s, while %d connection(s) are held "
            "(%s): a blocking call in an async route stalls every request; make it async or "
            "run it with `await asyncio.to_thread(...)`\n%s",
            silence,
            route,
            where,
            held,
            ", ".join(f"{m.database!r}: {len(m.held)}" for m in holding),
            stack,
            extra={"pooltender": {"event": "loop_blocked", "route": route, "site": where}},
        )

    def _current_route(self, monitors: list[PoolMonitor]) -> str:
        """The route of the task running on the loop now: its request's, else the route
        of a connection it holds."""
        task = asyncio.current_task(self.loop)  # safe from another thread, given the loop
        request = request_of_task(task) if task is not None else None
        if request is not None:
            return request.route
        for monitor in monitors:
            for held in list(monitor.held.values()):
                if held.context is not None and held.context.task is task and task is not None:
                    return held.route
        return "an unknown route"

    def _report_leak(self, monitor: PoolMonitor, held: Checkout) -> None:
        site = format_site(held.site)
        logger.warning(
            "database %r: connection #%d checked out in %s at %s has been held for %.1fs "
            "(leak threshold %gs): suspected leak; return it with `async with`/`with` or "
            "close()\n%s",
            monitor.database,
            held.id,
            held.route,
            site,
            time.perf_counter() - held.started,
            monitor.leak_threshold,
            format_stack(held.site),
            extra={
                "pooltender": {
                    "event": "leak",
                    "database": monitor.database,
                    "route": held.route,
                    "site": site,
                }
            },
        )

    def _drain(self, monitors: list[PoolMonitor]) -> None:
        for monitor in monitors:
            reports = monitor.reports
            while reports:
                try:
                    kind, held, seconds = reports.popleft()
                except IndexError:
                    break
                self._write(monitor, kind, held, seconds)

    def _write(self, monitor: PoolMonitor, kind: str, held: Checkout, seconds: float) -> None:
        site = format_site(held.site)
        extra: dict[str, Any] = {
            "pooltender": {
                "event": kind,
                "database": monitor.database,
                "route": held.route,
                "site": site,
            }
        }
        if kind == "returned":
            logger.info(
                "database %r: suspected leak #%d (%s at %s) was returned after %.1fs",
                monitor.database,
                held.id,
                held.route,
                site,
                seconds,
                extra=extra,
            )
        elif kind == "reclaimed":
            logger.warning(
                "database %r: connection #%d checked out in %s at %s was never returned; the "
                "garbage collector reclaimed it after %.1fs\n%s",
                monitor.database,
                held.id,
                held.route,
                site,
                seconds,
                format_stack(held.site),
                extra=extra,
            )
        elif kind == "after_response":
            key = (monitor.database, held.route)
            if key in self._reported_routes:
                return
            if len(self._reported_routes) < 1000:
                self._reported_routes.add(key)
            logger.warning(
                "database %r: connection checked out in %s at %s was still held after the "
                "response started (%.2fs in all), as with a StreamingResponse or BackgroundTasks "
                "using the request's session; %s (reported once per route, then counted)",
                monitor.database,
                held.route,
                site,
                seconds,
                held.context.advice if held.context is not None else "",
                extra=extra,
            )
