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
    """Watch a running service's pools, like top (reads /debug/pool-stats)."""
    target = stats_url(url)
    console = Console(highlight=False)
    with httpx.Client(timeout=5.0) as client:
        previous = fetch_stats(client, target, token)
        if once:
            console.print(render(previous, None, target))
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


def render(snapshot: Snapshot, previous: Snapshot | None, source: str) -> RenderableType:
    """One frame: a summary table of every database, then its top routes and held connections.

    Every string from the snapshot goes through :func:`sanitize` into a
    :class:`rich.text.Text`, so a route named ``[red]x`` is shown as typed, never read
    as markup, and no escape sequence or control character reaches the terminal.
    """
    stamp = time.strftime("%H:%M:%S", time.localtime(snapshot.generated_at))
    summary = Table(title=_cell(f"pooltender top · {source} · {stamp}"), title_justify="left")
    for column in ("database", "used", "idle", "wait", "max", "req/s"):
        summary.add_column(column, justify="left" if column == "database" else "right")
    for column in ("wait p50/p99", "use p50/p99", "timeouts", "rejected", "leaks"):
        summary.add_column(column, justify="right")
    parts: list[RenderableType] = [summary]
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
            f"{fmt_seconds(wait.p50)} / {fmt_seconds(wait.p99)}",
            f"{fmt_seconds(use.p50)} / {fmt_seconds(use.p99)}",
            _alert(db.timeouts),
            _alert(db.rejected),
            _alert(db.leaks_suspected),
        )
        parts.append(_routes(name, db.routes))
        parts.append(_held(name, db.held))
    return Group(*parts)


def _alert(value: int) -> Text:
    return _cell(value, style="bold red" if value else "")


def _routes(name: str, routes: tuple[RouteStats, ...]) -> Table:
    table = Table(title=_cell(f"{name}: routes by total hold time"), title_justify="left")
    for column in ("route", "checkouts", "total", "p50", "p99", "max"):
        table.add_column(column, justify="left" if column == "route" else "right")
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
    table = Table(title=_cell(f"{name}: held now ({len(held)})"), title_justify="left")
    for column in ("route", "age", "checkout site"):
        table.add_column(column, justify="right" if column == "age" else "left")
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
