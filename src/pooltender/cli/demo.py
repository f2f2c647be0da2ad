"""``pooltender demo``: the demo service on embedded SQLite (or DATABASE_URL)."""

from __future__ import annotations

from typing import Annotated

import typer

from ._common import CliError

__all__ = ["demo"]


def demo(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port to listen on.")] = 8000,
    traffic: Annotated[
        bool, typer.Option("--traffic", help="Send gentle load to itself so the dashboard moves.")
    ] = False,
) -> None:
    """Run the demo service: users/items CRUD, a slow report, analytics on a 2nd database."""
    import copy
    import threading

    import uvicorn
    from uvicorn.config import LOGGING_CONFIG

    from pooltender_demo import create_app

    from ._traffic import start_traffic, wait_until_up

    if traffic and port == 0:
        raise CliError("--traffic needs a known port: give --port (not 0)")
    log_config = copy.deepcopy(LOGGING_CONFIG)
    log_config["loggers"]["pooltender"] = {"handlers": ["default"], "level": "INFO"}
    if traffic:  # quiet the access log: the load would drown everything else
        log_config["loggers"]["uvicorn.access"]["level"] = "WARNING"
    base = f"http://{host}:{port}"
    typer.echo(f"pooltender demo on {base}  (API docs: {base}/docs)")
    typer.echo(f"dashboard: {base}/debug/pool  (stats: {base}/debug/pool-stats)")
    stop = threading.Event()
    if traffic:
        local = f"http://127.0.0.1:{port}" if host in ("0.0.0.0", "::") else base
        typer.echo("traffic: ~10 quick reads/s and a 1.5 s report every 2 s")

        def begin() -> None:
            if wait_until_up(local):
                start_traffic(local, stop)

        threading.Thread(target=begin, name="pooltender-traffic", daemon=True).start()
    try:
        uvicorn.run(create_app(), host=host, port=port, log_config=log_config)
    finally:
        stop.set()
