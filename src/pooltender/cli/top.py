"""``pooltender top URL``: a live terminal view of a running service's pools."""

from __future__ import annotations

import time
from typing import Annotated

import httpx
import typer
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from ..stats import HeldConnection, RouteStats, Snapshot
from ._common import fetch_stats, fmt_seconds, sanitize, stats_url

__all__ = ["render", "top"]

ROUTES_SHOWN = 5
HELD_SHOWN = 8


def _cell(value: object, style: str = "") -> Text:
    """A table cell of a value from the service: sanitised, never read as markup."""
    return Text(sanitize(value), style=style)


def top(
    url: Annotated[str, typer.Argument(help="The service (http://host:port) or its stats URL.")],
    token: Annotated[
        str | None, typer.Option(help="Bearer token (default: $POOLTENDER_DEBUG_TOKEN).")
    ] = None,
    interval: Annotated[float, typer.Option(min=0.2, max=60, help="Seconds per refresh.")] = 1.0,
    once: Annotated[bool, typer.Option("--once", help="Print one frame and exit.")] = False,
) -> None:
    """Watch a running service's pools, like top (reads /debug/pool-stats).

    On a terminal the frame is redrawn in place; otherwise (a pipe, a file) each
    frame is printed after the last, plain, and flushed at once.
    """
    target = stats_url(url)
    console = Console(highlight=False)
    with httpx.Client(timeout=5.0) as client:
        previous = fetch_stats(client, target, token)
        if once or not console.is_terminal:
            _print_frames(console, client, target, token, previous, None if once else interval)
            return
        with Live(render(previous, None, target), console=console, auto_refresh=False) as live:
            try:
                while True:
                    time.sleep(interval)
                    current = fetch_stats(client, target, token)
                    live.update(render(current, previous, target), refresh=True)
                    previous = current
            except KeyboardInterrupt:
                pass


def _print_frames(
    console: Console,
    client: httpx.Client,
    target: str,
    token: str | None,
    first: Snapshot,
    interval: float | None,
) -> None:
    """Frame after frame, each flushed (``interval`` None: the first only)."""
    previous: Snapshot | None = None
    current = first
    try:
        while True:
            if previous is not None:
                console.print()
            console.print(render(current, previous, target))
            console.file.flush()
            if interval is None:
                return
            time.sleep(interval)
            previous, current = current, fetch_stats(client, target, token)
    except (KeyboardInterrupt, BrokenPipeError):
        pass


def render(snapshot: Snapshot, previous: Snapshot | None, source: str) -> RenderableType:
    """One frame: a summary table of every database, then its top routes and held connections.

    Every string from the snapshot goes through :func:`sanitize` into a
    :class:`rich.text.Text`, so a route named ``[red]x`` is shown as typed, never read
    as markup, and no escape sequence or control character reaches the terminal.
    """
    stamp = time.strftime("%H:%M:%S", time.localtime(snapshot.generated_at))
    # Two narrow tables rather than one wide one: each fits 80 columns, headers whole.
    summary = _table(
        f"pooltender top · {source} · {stamp}",
        ("database", "used", "idle", "wait", "max", "req/s", "timeouts", "rejected", "leaks"),
    )
    times = _table("wait for and use of a connection", TIMES)
    parts: list[RenderableType] = [summary, times]
    elapsed = None if previous is None else snapshot.generated_at - previous.generated_at
    for name, db in snapshot.databases.items():
        rate = "-"
        before = previous.databases.get(name) if previous is not None else None
        if before is not None and elapsed and elapsed > 0:
            rate = f"{(db.checkouts - before.checkouts) / elapsed:.1f}"
        wait, use = db.wait_time, db.use_time
        summary.add_row(
            _cell(name),
            str(db.checked_out),
            str(db.available),
            _alert(db.waiting),
            "∞" if db.max is None else str(db.max),
            rate,
            _alert(db.timeouts),
            _alert(db.rejected),
            _alert(db.leaks_suspected),
        )
        times.add_row(
            _cell(name), *(fmt_seconds(v) for v in (wait.p50, wait.p99, use.p50, use.p99))
        )
        parts.append(_routes(name, db.routes))
        parts.append(_held(name, db.held))
    return Group(*parts)


TIMES = ("database", "wait p50", "wait p99", "use p50", "use p99")
LEFT = frozenset({"database", "route", "checkout site"})


def _table(title: str, columns: tuple[str, ...]) -> Table:
    """A table whose headers are never cut: each column at least as wide as its header."""
    table = Table(title=_cell(title), title_justify="left")
    for column in columns:
        table.add_column(
            column, justify="left" if column in LEFT else "right", min_width=len(column)
        )
    return table


def _alert(value: int) -> Text:
    return _cell(value, style="bold red" if value else "")


def _routes(name: str, routes: tuple[RouteStats, ...]) -> Table:
    table = _table(
        f"{name}: routes by total hold time", ("route", "checkouts", "total", "p50", "p99", "max")
    )
    for r in routes[:ROUTES_SHOWN]:
        table.add_row(
            _cell(r.route),
            str(r.hold.count),
            fmt_seconds(r.hold.sum),
            fmt_seconds(r.hold.p50),
            fmt_seconds(r.hold.p99),
            fmt_seconds(r.hold.max),
        )
    if not routes:
        table.add_row(Text("no checkouts yet", style="dim"), "", "", "", "", "")
    return table


def _held(name: str, held: tuple[HeldConnection, ...]) -> Table:
    table = _table(f"{name}: held now ({len(held)})", ("route", "age", "checkout site"))
    for h in sorted(held, key=lambda h: -h.age)[:HELD_SHOWN]:
        style = "bold red" if h.leak else ""
        route = h.route or "(outside a request)"
        table.add_row(
            _cell(("LEAK? " if h.leak else "") + route, style),
            _cell(fmt_seconds(h.age), style),
            _cell(h.site, style),
        )
    if not held:
        table.add_row(Text("none", style="dim"), "", "")
    return table
