"""``pooltender top URL``: a live terminal view of a running service's pools."""

from __future__ import annotations

import re
import time
import unicodedata
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from ._common import CliError, fetch_stats, fmt_seconds, stats_url

__all__ = ["render", "sanitize", "top"]

ROUTES_SHOWN = 5
HELD_SHOWN = 8

# Terminal escape sequences, 7-bit (ESC ...) and 8-bit (C1) forms: CSI with its
# parameters; OSC, DCS, SOS, PM and APC up to their terminator (or the end of the
# text); any other ESC with its intermediate and final bytes.
_ESCAPES = re.compile(
    r"(?:\x1b\[|\x9b)[\x30-\x3f]*[\x20-\x2f]*[\x40-\x7e]?"
    r"|(?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f]).*?(?:\x07|\x1b\\|\x9c|\Z)"
    r"|\x1b[\x20-\x2f]*[\x30-\x7e]?",
    re.DOTALL,
)
# Controls (C0, DEL, C1), format characters (bidi overrides and isolates, zero-width
# characters), lone surrogates, line and paragraph separators.
_HIDDEN = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
_BREAKS = frozenset("\t\n\v\f\r\x85\u2028\u2029")


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
            console.print(_frame(previous, None, target))
            return
        with Live(_frame(previous, None, target), console=console, auto_refresh=False) as live:
            try:
                while True:
                    time.sleep(interval)
                    current = fetch_stats(client, target, token)
                    live.update(_frame(current, previous, target), refresh=True)
                    previous = current
            except KeyboardInterrupt:
                pass


def sanitize(value: object) -> str:
    """``value`` as text a terminal shows as it is: every string from a service passes here.

    Escape sequences (CSI, OSC, DCS, ... in 7- and 8-bit form) are removed whole;
    tabs and line breaks become a space; every other control or format character
    (C0, DEL, C1, bidi overrides and isolates, zero-width characters) and any lone
    surrogate is removed.
    """
    text = _ESCAPES.sub("", str(value))
    return "".join(
        " " if char in _BREAKS else char
        for char in text
        if char in _BREAKS or unicodedata.category(char) not in _HIDDEN
    )


def _cell(value: object, style: str = "") -> Text:
    """A table cell of a value from the service: sanitised, never read as markup."""
    return Text(sanitize(value), style=style)


def _frame(doc: dict[str, Any], previous: dict[str, Any] | None, source: str) -> RenderableType:
    """:func:`render`, with a snapshot it cannot read as a one-line error."""
    try:
        return render(doc, previous, source)
    except (AttributeError, KeyError, OverflowError, TypeError, ValueError) as exc:
        reason = sanitize(f"{type(exc).__name__}: {exc}")
        raise CliError(f"{source} answered a snapshot pooltender cannot read ({reason})") from None


def render(doc: dict[str, Any], previous: dict[str, Any] | None, source: str) -> RenderableType:
    """One frame: a summary table of every database, then its top routes and held connections.

    Every value from the snapshot goes through :func:`sanitize` into a
    :class:`rich.text.Text`, so a route named ``[red]x`` is shown as typed, never read
    as markup, and no escape sequence or control character reaches the terminal.
    """
    stamp = time.strftime("%H:%M:%S", time.localtime(float(doc["generated_at"])))
    title = _cell(f"pooltender top · {source} · {stamp}")
    summary = Table(title=title, title_justify="left")
    for column in ("database", "used", "idle", "wait", "max", "req/s"):
        summary.add_column(column, justify="left" if column == "database" else "right")
    for column in ("wait p50/p99", "use p50/p99", "timeouts", "rejected", "leaks"):
        summary.add_column(column, justify="right")
    parts: list[RenderableType] = [summary]
    elapsed = None if previous is None else doc["generated_at"] - previous["generated_at"]
    for name, db in doc["databases"].items():
        rate = "-"
        before = (previous or {}).get("databases", {}).get(name)
        if before is not None and elapsed and elapsed > 0:
            rate = f"{(db['checkouts'] - before['checkouts']) / elapsed:.1f}"
        wait, use = db.get("wait_time") or {}, db.get("use_time") or {}
        summary.add_row(
            _cell(name),
            _cell(db["checked_out"]),
            _cell(db["available"]),
            _alert(db["waiting"]),
            "∞" if db.get("max") is None else _cell(db["max"]),
            rate,
            f"{fmt_seconds(wait.get('p50'))} / {fmt_seconds(wait.get('p99'))}",
            f"{fmt_seconds(use.get('p50'))} / {fmt_seconds(use.get('p99'))}",
            _alert(db["timeouts"]),
            _alert(db["rejected"]),
            _alert(db["leaks_suspected"]),
        )
        parts.append(_routes(name, db.get("routes") or []))
        parts.append(_held(name, db.get("held") or []))
    return Group(*parts)


def _alert(value: int) -> Text:
    return _cell(value, style="bold red" if value else "")


def _routes(name: str, routes: list[dict[str, Any]]) -> Table:
    table = Table(title=_cell(f"{name}: routes by total hold time"), title_justify="left")
    for column in ("route", "checkouts", "total", "p50", "p99", "max"):
        table.add_column(column, justify="left" if column == "route" else "right")
    for r in routes[:ROUTES_SHOWN]:
        table.add_row(
            _cell(r["route"]),
            _cell(r["checkouts"]),
            fmt_seconds(r["hold_total"]),
            fmt_seconds(r.get("hold_p50")),
            fmt_seconds(r.get("hold_p99")),
            fmt_seconds(r.get("hold_max")),
        )
    if not routes:
        table.add_row(Text("no checkouts yet", style="dim"), "", "", "", "", "")
    return table


def _held(name: str, held: list[dict[str, Any]]) -> Table:
    table = Table(title=_cell(f"{name}: held now ({len(held)})"), title_justify="left")
    for column in ("route", "age", "checkout site"):
        table.add_column(column, justify="right" if column == "age" else "left")
    for h in sorted(held, key=lambda h: -float(h["age"]))[:HELD_SHOWN]:
        style = "bold red" if h.get("leak") else ""
        route = h.get("route") or "(outside a request)"
        table.add_row(
            _cell(("LEAK? " if h.get("leak") else "") + str(route), style=style),
            Text(fmt_seconds(h["age"]), style=style),
            _cell(h.get("site") or "", style=style),
        )
    if not held:
        table.add_row(Text("none", style="dim"), "", "")
    return table
