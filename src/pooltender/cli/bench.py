"""``pooltender bench [URL]``: bounded load against a local service, with a report.

Without a URL the demo service runs in-process on an ephemeral port (on its own
fresh SQLite files, or on ``DATABASE_URL``). ``--compare nullpool`` runs the demo
a second time with connection reuse off (``pool_recycle=0``: every checkout
opens a new connection, as SQLAlchemy's ``NullPool`` does, within the same
bound) and puts both side by side. Writes ``bench.json``, ``bench.md`` and,
with ``pooltender[bench]`` (matplotlib) installed, ``bench.png``.
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn
from rich.table import Table

from ._common import CliError, fmt_seconds
from ._load import LoadResult, require_loopback, run_load
from ._server import serve_in_thread

__all__ = ["COMPARISONS", "bench"]

DEMO_PATHS = ["/users/1", "/users/2/items", "/items/3", "/users?limit=10", "/analytics/summary"]

COMPARISONS: dict[str, dict[str, str]] = {
    # No reuse: each checkout replaces its connection (QueuePool with recycle 0).
    "nullpool": {"DATABASE_POOL_RECYCLE": "0", "DATABASE_ANALYTICS_POOL_RECYCLE": "0"},
}


def bench(
    url: Annotated[
        str | None, typer.Argument(help="A loopback service; default: the demo, in-process.")
    ] = None,
    path: Annotated[
        list[str] | None, typer.Option("--path", help="Path to GET (repeatable).")
    ] = None,
    requests: Annotated[int, typer.Option(min=1, max=100_000, help="Requests per run.")] = 2000,
    duration: Annotated[
        float, typer.Option(min=0.5, max=300, help="Seconds per run, at most.")
    ] = 15,
    concurrency: Annotated[int, typer.Option(min=1, max=256, help="Requests in flight.")] = 16,
    compare: Annotated[
        str | None,
        typer.Option(help="Run the demo again as 'nullpool' or with VAR=VALUE[,VAR=VALUE]."),
    ] = None,
    out: Annotated[Path, typer.Option(help="Directory for bench.json/.md/.png.")] = Path(
        "pooltender-bench"
    ),
) -> None:
    """Load a service (or the demo) and report throughput, latency and status codes."""
    paths = path or ([] if url else DEMO_PATHS)
    if url is not None:
        require_loopback(url)
        if compare is not None:
            raise CliError("--compare runs the built-in demo twice: leave out the URL")
        if not paths:
            paths = ["/"]
    bad = [p for p in paths if not p.startswith("/")]
    if bad:
        raise CliError(f"--path must start with '/': {bad[0]!r}")
    configs: list[tuple[str, dict[str, str]]] = [("pooled", {})]
    if compare is not None:
        configs.append((compare, _comparison(compare)))
    console = Console(highlight=False)
    settings: dict[str, Any] = {
        "requests": requests,
        "duration": duration,
        "concurrency": concurrency,
    }
    results = []
    for label, overrides in configs:
        if url is not None:
            results.append(_run(console, url, paths, label="service", **settings))
            continue
        with tempfile.TemporaryDirectory(prefix="pooltender-bench-") as directory:
            app = _demo_app(overrides, directory)
            with serve_in_thread(app) as base:
                console.print(f"demo ({label}) on {base}")
                results.append(_run(console, base, paths, label=label, **settings))
    report = {
        "target": url or "pooltender demo (in-process)",
        "paths": paths,
        **settings,
        "runs": [r.summary() for r in results],
    }
    _print(console, report)
    written = _write(out, report)
    console.print("wrote " + ", ".join(str(p) for p in written))


def _comparison(spec: str) -> dict[str, str]:
    if spec in COMPARISONS:
        return COMPARISONS[spec]
    pairs = [item.partition("=") for item in spec.split(",") if item.strip()]
    if not pairs or any(not sep or not key.startswith("DATABASE_") for key, sep, _ in pairs):
        known = ", ".join(sorted(COMPARISONS))
        raise CliError(f"--compare takes {known} or DATABASE_VAR=VALUE[,...], not {spec!r}")
    return {key.strip(): value.strip() for key, _, value in pairs}


def _demo_app(overrides: dict[str, str], directory: str) -> Any:
    from pooltender_demo import create_app

    env = dict(os.environ)
    env["POOLTENDER_DEMO_DIR"] = directory
    env.update(overrides)
    return create_app(env)


def _run(
    console: Console,
    base: str,
    paths: list[str],
    *,
    label: str,
    requests: int,
    duration: float,
    concurrency: int,
) -> LoadResult:
    columns = (
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task(label, total=requests)
        return asyncio.run(
            run_load(
                base,
                paths,
                label=label,
                requests=requests,
                duration=duration,
                concurrency=concurrency,
                on_done=lambda: progress.advance(task),
            )
        )


def _print(console: Console, report: dict[str, Any]) -> None:
    table = Table(title=f"bench: {report['target']}", title_justify="left")
    for column in ("run", "requests", "req/s", "p50", "p90", "p99", "max", "statuses"):
        table.add_column(column, justify="left" if column in ("run", "statuses") else "right")
    for run in report["runs"]:
        lat = run["latency"]
        table.add_row(
            run["label"],
            str(run["requests"]),
            f"{run['throughput']:.1f}",
            *(fmt_seconds(lat[k]) for k in ("p50", "p90", "p99", "max")),
            " ".join(f"{k}:{v}" for k, v in run["statuses"].items()),
        )
    console.print(table)


def markdown(report: dict[str, Any]) -> str:
    """The report as a Markdown table."""
    lines = [
        f"# pooltender bench: {report['target']}",
        "",
        f"{report['concurrency']} in flight, at most {report['requests']} requests"
        f" or {report['duration']:g} s per run; paths: "
        + ", ".join(f"`{p}`" for p in report["paths"]),
        "",
        "| run | requests | req/s | p50 | p90 | p99 | max | statuses |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for run in report["runs"]:
        lat = run["latency"]
        cells = [fmt_seconds(lat[k]) for k in ("p50", "p90", "p99", "max")]
        statuses = ", ".join(f"{k}: {v}" for k, v in run["statuses"].items())
        lines.append(
            f"| {run['label']} | {run['requests']} | {run['throughput']:.1f} | "
            + " | ".join(cells)
            + f" | {statuses} |"
        )
    return "\n".join(lines) + "\n"


def _write(out: Path, report: dict[str, Any]) -> list[Path]:
    try:
        out.mkdir(parents=True, exist_ok=True)
        written = [out / "bench.json", out / "bench.md"]
        written[0].write_text(json.dumps(report, indent=2) + "\n")
        written[1].write_text(markdown(report))
    except OSError as exc:
        raise CliError(f"cannot write the report to {out}: {exc.strerror or exc}") from None
    chart = _chart(out / "bench.png", report)
    if chart is not None:
        written.append(chart)
    return written


def _chart(target: Path, report: dict[str, Any]) -> Path | None:
    """A PNG of latency percentiles and throughput per run; None without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        typer.echo("(no bench.png: install pooltender[bench] for the chart)", err=True)
        return None
    runs = report["runs"]
    keys = ["p50", "p90", "p99"]
    figure, (latency, throughput) = plt.subplots(1, 2, figsize=(9, 3.6))
    width = 0.8 / max(1, len(runs))
    for i, run in enumerate(runs):
        values = [(run["latency"][k] or 0) * 1000 for k in keys]
        latency.bar([x + i * width for x in range(len(keys))], values, width, label=run["label"])
    latency.set_xticks([x + width * (len(runs) - 1) / 2 for x in range(len(keys))], keys)
    latency.set_ylabel("latency (ms)")
    latency.legend()
    throughput.bar([r["label"] for r in runs], [r["throughput"] for r in runs], color="#2b8a3e")
    throughput.set_ylabel("requests / s")
    figure.suptitle(f"pooltender bench: {report['target']}")
    figure.tight_layout()
    figure.savefig(target, dpi=100)
    plt.close(figure)
    return target
