"""``pooltender check``: can every configured database carry this deployment?

For each database from ``DATABASE_*``: reachable, each host and its role (primary,
standby, read-only; a multi-host URL lists them all), server version, slots
(``max_connections`` less the reserved ones), connections in use, the time to
open a connection against a pooled checkout, the connection budget of
``workers x instances`` processes against the slots that other clients (other
services, other databases of the server) leave free now, and whether a pooler
(PgBouncer) is in between. Exits 1 when a check fails, so it can gate a deploy.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from ..errors import ConfigurationError
from ..secrets import redact_url
from ..settings import DatabaseSettings, load_database_settings
from ..sizing import budget as connection_budget
from ._common import EXIT_FAILED, CliError, fmt_seconds
from ._probe import Probe, ServerFacts, probe

__all__ = ["check", "pooler_signs"]

PGBOUNCER_PORT = 6432


def pooler_signs(url_port: int | None, facts: ServerFacts) -> list[str]:
    """Evidence that a pooler such as PgBouncer sits between the client and PostgreSQL."""
    signs = []
    port = url_port or 5432
    if port == PGBOUNCER_PORT:
        signs.append("the URL uses port 6432 (PgBouncer's default)")
    if facts.server_port is not None and facts.server_port != port:
        signs.append(f"the URL's port is {port} but the server listens on {facts.server_port}")
    if len(facts.backend_pids) > 1:
        signs.append(
            f"one client connection reached {len(facts.backend_pids)} server processes"
            " in 3 transactions (transaction pooling)"
        )
    return signs


@dataclass
class _Row:
    check: str
    value: str
    ok: bool | None  # None: information only


def check(
    workers: Annotated[int, typer.Option(min=1, help="Worker processes per instance.")] = 1,
    instances: Annotated[int, typer.Option(min=1, help="Instances (machines, pods).")] = 1,
    samples: Annotated[
        int, typer.Option(min=1, max=1000, help="Samples per timing (medians).")
    ] = 10,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
) -> None:
    """Check every configured database: reachable, slots, timings, budget, PgBouncer."""
    try:
        configured = load_database_settings()
    except ConfigurationError as exc:
        raise CliError(str(exc)) from None
    if not configured:
        raise CliError("no database configured: set DATABASE_URL (and DATABASE_<NAME>_URL)")
    probes = asyncio.run(_probe_all(list(configured.values()), samples))
    report = _evaluate(probes, workers, instances)
    if as_json:
        typer.echo(json.dumps(report, indent=2))
    else:
        _print(report, workers, instances)
    if not report["ok"]:
        raise typer.Exit(EXIT_FAILED)


async def _probe_all(settings: list[DatabaseSettings], samples: int) -> list[Probe]:
    return list(await asyncio.gather(*(probe(s, samples) for s in settings)))


def _server_key(settings: DatabaseSettings) -> tuple[str, str, int | None]:
    url = settings.url
    return (settings.driver.backend, url.host or "localhost", url.port)


def _url_port(settings: DatabaseSettings, reached: int | None) -> int | None:
    """The URL's port of the host the probe reached: a multi-host URL names several."""
    ports = [int(h.rpartition(":")[2]) if ":" in h else 5432 for h in settings.hosts]
    if len(ports) == 1:
        return settings.url.port
    return reached if reached in ports else ports[0]


def _evaluate(probes: list[Probe], workers: int, instances: int) -> dict[str, Any]:
    """The report as plain data (what ``--json`` prints)."""
    # Databases on one server share its slots: their budgets add up.
    per_server: dict[tuple[str, str, int | None], int] = {}
    for p in probes:
        limit = p.settings.max_connections
        if limit is not None:
            key = _server_key(p.settings)
            per_server[key] = per_server.get(key, 0) + workers * instances * limit
    databases: dict[str, Any] = {}
    for p in probes:
        s = p.settings
        entry: dict[str, Any] = {
            "url": redact_url(s.url),
            "reachable": p.error is None,
            "error": p.error,
            "connect_median": Probe.median(p.connect),
            "connect_query_median": Probe.median(p.connect_query),
            "pooled_median": Probe.median(p.pooled),
            "samples": len(p.pooled),
            "pool_size": s.pool_size,
            "max_overflow": s.max_overflow,
            "failures": [],
        }
        if p.roles:
            entry["hosts"] = [{"host": host, "role": role} for host, role in p.roles]
            if not s.read_only and all(role != "primary" for _, role in p.roles):
                entry["failures"].append(
                    "no host is a writable primary: "
                    + ", ".join(f"{host} {role}" for host, role in p.roles)
                )
        if p.error is not None:
            entry["failures"].append(f"unreachable: {p.error}")
        facts = p.facts
        if facts is not None:
            entry.update(
                server_version=facts.version,
                max_connections=facts.max_connections,
                superuser_reserved_connections=facts.superuser_reserved,
                reserved_connections=facts.reserved,
                usable_slots=facts.usable,
                in_use=facts.in_use,
            )
            limit = s.max_connections
            if limit is None:
                entry["budget"] = None
                entry["failures"].append(
                    "the pool is unbounded (pool_size 0 or max_overflow -1): no budget holds"
                )
            else:
                mine = connection_budget(workers, instances, s.pool_size, s.max_overflow)
                shared = per_server[_server_key(s)]
                entry["budget"] = mine
                entry["server_budget"] = shared
                if shared > facts.usable:
                    entry["failures"].append(
                        f"budget {shared} connections exceeds the {facts.usable} usable slots"
                    )
                else:
                    _count_others(entry, p.others_in_use, shared, facts.usable)
            if s.driver.backend == "postgresql":
                signs = pooler_signs(_url_port(s, facts.server_port), facts)
                entry["pooler_signs"] = signs
                if signs:
                    entry["budget_note"] = (
                        "behind a pooler, service connections count against its"
                        " max_client_conn; the server's slots are shared by its pools"
                    )
                if signs and not s.pgbouncer:
                    entry["failures"].append(
                        f"a pooler is in front ({signs[0]}) but {s.variable('pgbouncer')}"
                        " is not true"
                    )
        elif p.error is None:
            entry["budget"] = None  # SQLite: no server slots to budget
        databases[s.name] = entry
    ok = all(not e["failures"] for e in databases.values())
    return {"ok": ok, "workers": workers, "instances": instances, "databases": databases}


def _count_others(entry: dict[str, Any], others: int | None, budget: int, usable: int) -> None:
    """The connections other clients hold now take slots too: the budget must fit in the rest."""
    if others is None:
        return
    free = max(0, usable - others)
    entry["others_in_use"] = others
    entry["free_slots"] = free
    if budget > free:
        entry["failures"].append(
            f"budget {budget} connections exceeds the {free} slots left free: {others} of the"
            f" {usable} usable slots are in use by other clients now"
        )


def _others_rows(e: dict[str, Any]) -> list[_Row]:
    if "others_in_use" not in e:
        return []
    budget = e["server_budget"]
    return [
        _Row(
            "in use by others",
            f"{e['others_in_use']} connections (other clients, other databases):"
            f" {e['free_slots']} slots left for the budget of {budget}",
            budget <= e["free_slots"],
        )
    ]


def _print(report: dict[str, Any], workers: int, instances: int) -> None:
    console = Console(highlight=False)
    for name, e in report["databases"].items():
        table = Table(title=f"{name}: {e['url']}", title_justify="left", show_header=False)
        table.add_column("check")
        table.add_column("value")
        table.add_column("", justify="center")
        for row in _rows(e, workers, instances):
            mark = "" if row.ok is None else ("[green]ok[/]" if row.ok else "[red]FAIL[/]")
            table.add_row(row.check, row.value, mark)
        console.print(table)
        for failure in e["failures"]:
            console.print(f"[red]FAIL[/] {name}: {failure}")
    console.print("all checks passed" if report["ok"] else "[red]some checks failed[/]")


def _rows(e: dict[str, Any], workers: int, instances: int) -> list[_Row]:
    hosts = []
    if "hosts" in e:
        roles = ", ".join(f"{h['host']} {h['role']}" for h in e["hosts"])
        no_primary = any(f.startswith("no host is") for f in e["failures"])
        hosts.append(_Row("hosts", roles, not no_primary))
    if not e["reachable"]:
        return [_Row("reachable", f"no: {e['error']}", False), *hosts]
    rows = [_Row("reachable", "yes", True), *hosts]
    if "server_version" in e:
        reserved = [
            f"{key} {e[key]}"
            for key in ("superuser_reserved_connections", "reserved_connections")
            if e[key]
        ]
        held_back = f" ({', '.join(reserved)})" if reserved else ""
        rows += [
            _Row("server version", e["server_version"], None),
            _Row(
                "max_connections",
                f"{e['max_connections']}{held_back}: {e['usable_slots']} usable",
                None,
            ),
            _Row("connections in use now", str(e["in_use"]), None),
        ]
    connect, pooled = e["connect_query_median"], e["pooled_median"]
    speedup = f" ({connect / pooled:.0f}x faster)" if connect and pooled else ""
    rows += [
        _Row(
            "new connection + SELECT 1",
            f"{fmt_seconds(connect)} median of {e['samples']}"
            f" (opening alone {fmt_seconds(e['connect_median'])})",
            None,
        ),
        _Row("pooled checkout + SELECT 1", f"{fmt_seconds(pooled)}{speedup}", None),
    ]
    if e.get("budget") is None and "server_version" not in e:
        rows.append(_Row("budget", "N/A (no server connection limit)", None))
    elif e.get("budget") is not None:
        per = e["pool_size"] + max(0, e["max_overflow"])
        text = (
            f"{workers} workers x {instances} instances x ({e['pool_size']} + "
            f"{max(0, e['max_overflow'])}) = {workers * instances * per}"
        )
        if e["server_budget"] != e["budget"]:
            text += f"; {e['server_budget']} with the other databases on this server"
        text += f" vs {e['usable_slots']} usable slots"
        rows.append(_Row("budget", text, e["server_budget"] <= e["usable_slots"]))
        rows += _others_rows(e)
        if "budget_note" in e:
            rows.append(_Row("", e["budget_note"], None))
    if "pooler_signs" in e:
        signs = e["pooler_signs"]
        rows.append(
            _Row(
                "PgBouncer in front",
                (
                    "yes: " + "; ".join(signs) + ". Needs DATABASE_PGBOUNCER=true"
                    " (no server-side prepared statements), transaction pool_mode"
                )
                if signs
                else "not detected",
                None if not signs else not any("PGBOUNCER" in f for f in e["failures"]),
            )
        )
    return rows
