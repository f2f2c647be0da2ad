"""``pooltender size``: pool settings from a load (``--rps``/``--query-ms``) or a live service."""

from __future__ import annotations

import time
from typing import Annotated

import httpx
import typer
from rich.console import Console
from rich.table import Table

from ..sizing import HEADROOM, Observation, Recommendation, observe, recommend
from ._common import CliError, fetch_stats, fmt_seconds, stats_url

__all__ = ["size"]


def size(
    rps: Annotated[
        float | None, typer.Option("--rps", min=0, help="Requests per second, all processes.")
    ] = None,
    query_ms: Annotated[
        float | None,
        typer.Option("--query-ms", min=0, help="Milliseconds a request holds a connection."),
    ] = None,
    source: Annotated[
        str | None,
        typer.Option("--from", help="Observe a live service's /debug/pool-stats instead."),
    ] = None,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes per instance.")] = 1,
    instances: Annotated[int, typer.Option(min=1, help="Instances (machines, pods).")] = 1,
    max_connections: Annotated[
        int | None, typer.Option(min=1, help="The server's max_connections.")
    ] = None,
    reserved: Annotated[
        int, typer.Option(min=0, help="Slots reserved for superusers and replication.")
    ] = 3,
    db_cores: Annotated[
        int | None, typer.Option(min=1, help="CPU cores of the database server.")
    ] = None,
    interval: Annotated[
        float, typer.Option(min=0.5, max=300, help="Seconds between the two snapshots (--from).")
    ] = 5.0,
    token: Annotated[
        str | None, typer.Option(help="Bearer token (default: $POOLTENDER_DEBUG_TOKEN).")
    ] = None,
) -> None:
    """Recommend pool_size, max_overflow, max_waiting and pool_timeout, and show why."""
    console = Console(highlight=False)

    def advise(total_rps: float, hold_seconds: float) -> Recommendation:
        return recommend(
            total_rps,
            hold_seconds,
            workers=workers,
            instances=instances,
            max_connections=max_connections,
            reserved=reserved,
            db_cores=db_cores,
        )

    if source is not None:
        if rps is not None or query_ms is not None:
            raise CliError("give either --from URL or --rps with --query-ms, not both")
        for obs in _observe(source, interval, token).values():
            console.print(
                f"[bold]{obs.name}[/]: {obs.checkouts} checkouts in {obs.seconds:.1f} s"
                f" = {obs.rps:.1f} req/s per process, hold {fmt_seconds(obs.hold_seconds)}"
                f" ({obs.hold_source}); now pool_size {obs.pool_size}, max {obs.max}"
            )
            total = obs.rps * workers * instances
            _show(console, advise(total, obs.hold_seconds))
        return
    if rps is None or query_ms is None:
        raise CliError("give --rps and --query-ms (or --from URL)")
    _show(console, advise(rps, query_ms / 1000))


def _observe(source: str, interval: float, token: str | None) -> dict[str, Observation]:
    url = stats_url(source)
    with httpx.Client(timeout=5.0) as client:
        first = fetch_stats(client, url, token)
        time.sleep(interval)
        second = fetch_stats(client, url, token)
    try:
        observed = observe(first, second)
    except ValueError as exc:
        raise CliError(f"{url}: {exc}") from None
    if not observed:
        raise CliError(f"{url} reports no databases")
    return observed


def _show(console: Console, rec: Recommendation) -> None:
    table = Table(title="recommended, per process", title_justify="left")
    table.add_column("setting")
    table.add_column("value", justify="right")
    table.add_column("why")
    table.add_row(
        "DATABASE_POOL_SIZE",
        str(rec.pool_size),
        f"mean busy connections x {HEADROOM:g} headroom",
    )
    table.add_row(
        "DATABASE_MAX_OVERFLOW", str(rec.max_overflow), "bursts up to 1.5x, in the ceiling"
    )
    table.add_row("DATABASE_MAX_WAITING", str(rec.max_waiting), "one pool-width of queue, then 503")
    table.add_row(
        "DATABASE_POOL_TIMEOUT", f"{rec.pool_timeout:g}", "2 x time to drain a full queue, >= 1 s"
    )
    console.print(table)
    console.print(
        f"Little's law: {rec.rps:.4g} req/s x {rec.hold_seconds:.3g} s"
        f" = {rec.rps * rec.hold_seconds:.3g} connections busy on average"
    )
    console.print(rec.formula)
    if rec.ceiling is not None:
        console.print(f"ceiling: {rec.ceiling} connections per process = {rec.ceiling_reason}")
    else:
        console.print(
            "ceiling: unknown; give --max-connections and/or --db-cores"
            " (PostgreSQL: cores x 2 + spindles active connections)"
        )
    if rec.budget is not None and rec.usable is not None:
        verdict = "fits" if rec.budget <= rec.usable else "EXCEEDS"
        console.print(f"budget: {rec.budget} connections {verdict} {rec.usable} usable slots")
    for note in rec.notes:
        console.print(f"note: {note}")
    if rec.pgbouncer:
        console.print(
            "PgBouncer: yes, in transaction mode; set DATABASE_PGBOUNCER=true on every service"
        )
    else:
        console.print("PgBouncer: not needed at this load")
