"""The ``pooltender`` command (``pooltender[cli]``): demo, check, size, top, bench.

Exit codes: 0 success; 1 a check failed (``check``); 2 bad input (unknown flag,
missing value, unreachable URL), printed as one line on stderr.
"""

from __future__ import annotations

import sys

__all__ = ["main"]


def main() -> None:
    """The console script: one line naming the extra when the command's libraries are
    missing (a core-only install has the package but not the command's dependencies)."""
    try:
        from .app import app
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.split(".")[0] in ("typer", "rich", "httpx", "uvicorn", "fastapi"):
            sys.stderr.write(
                f"pooltender: error: the command needs {exc.name.split('.')[0]}, which is not "
                "installed: pip install 'pooltender[cli]'\n"
            )
            sys.exit(2)
        raise
    app()
