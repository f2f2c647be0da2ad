"""The ``pooltender`` command: one module per verb, registered on one typer app."""

from __future__ import annotations

import typer

from .demo import demo

__all__ = ["app", "main"]

app = typer.Typer(
    name="pooltender",
    help="Correct, visible and right-sized database pools for FastAPI services.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root() -> None:
    """Correct, visible and right-sized database pools for FastAPI services."""


app.command()(demo)


def main() -> None:
    app()
