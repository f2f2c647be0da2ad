"""The ``pooltender`` command: one module per verb, registered on one typer app.

Exit codes: 0 success; 1 a check failed (``check``); 2 bad input (unknown flag,
missing value, unreachable URL), printed as one line on stderr.
"""

from __future__ import annotations

import typer

from ._common import OneLineErrorGroup
from .check import check
from .demo import demo
from .size import size

__all__ = ["app", "main"]

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


def main() -> None:
    app()
