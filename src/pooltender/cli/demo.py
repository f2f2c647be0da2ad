"""``pooltender demo``: the demo service on embedded SQLite (or DATABASE_URL)."""

from __future__ import annotations

from typing import Annotated

import typer

__all__ = ["demo"]


def demo(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port to listen on.")] = 8000,
) -> None:
    """Run the demo service: users/items CRUD, a slow report, analytics on a 2nd database."""
    import copy

    import uvicorn
    from uvicorn.config import LOGGING_CONFIG

    from ..demo import create_app

    log_config = copy.deepcopy(LOGGING_CONFIG)
    log_config["loggers"]["pooltender"] = {"handlers": ["default"], "level": "INFO"}
    typer.echo(f"pooltender demo on http://{host}:{port}  (API docs: http://{host}:{port}/docs)")
    uvicorn.run(create_app(), host=host, port=port, log_config=log_config)
