"""The ``pooltender`` command: one module per verb, registered on one typer app."""

from __future__ import annotations

import typer

from ._common import OneLineErrorGroup
from .bench import bench
from .check import check
from .demo import demo
from .size import size
from .top import top

__all__ = ["app"]

app = typer.Typer(
    name="pooltender",
    help="Correct, visible and right-sized database pools for FastAPI services.",
    cls=OneLineErrorGroup,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root() -> None:
    """Correct, visible and right-sized database pools for FastAPI services."""


app.command()(demo)
app.command()(check)
app.command()(size)
app.command()(top)
app.command()(bench)
