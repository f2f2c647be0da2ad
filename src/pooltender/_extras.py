"""Optional parts and the extras that install them: one clear line when one is missing."""

from __future__ import annotations

import importlib.util

__all__ = ["require"]


def require(module: str, extra: str) -> None:
    """Raise :class:`ModuleNotFoundError` naming the extra if ``module`` is not installed."""
    if importlib.util.find_spec(module) is None:
        raise ModuleNotFoundError(
            f"this part of pooltender needs {module}, which is not installed: "
            f"pip install 'pooltender[{extra}]'",
            name=module,
        )
