"""Find the user's code on the stack: the checkout site of a connection.

The site is the first frame that belongs to neither pooltender nor the libraries a
request passes through (SQLAlchemy, Starlette, FastAPI, anyio, asyncio, ...) nor the
standard library. A service installed into ``site-packages`` is user code, also where
site-packages lies inside the standard library's directory (Python outside a virtual
environment). The walk uses ``sys._getframe`` (through :mod:`pooltender.compat`) and keeps only
``(code, line)`` pairs: no source is read and nothing is formatted until a report
needs it (:func:`format_stack`).

Async engines run the pool inside a greenlet whose frames do not link back to the
caller; the walk continues in the parent greenlet, where the user's coroutine waits.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import linecache
import os
import site
import sys
import sysconfig
import threading
from types import CodeType, FrameType

import anyio
import sqlalchemy

from ..compat import getframe

__all__ = [
    "Site",
    "capture",
    "current_greenlet",
    "format_site",
    "format_stack",
    "is_library",
    "user_frame",
]

Site = tuple[tuple[CodeType, int], ...]
"""The user's frames, innermost first, as ``(code, line)`` pairs."""

STACK_DEPTH = 6
WALK_AFTER_SITE = 16


def _directory(module_file: str | None) -> str:
    return os.path.dirname(os.path.abspath(module_file or "")) + os.sep


_PACKAGE_DIR = _directory(os.path.dirname(__file__))  # pooltender itself
_LIBRARY_DIRS: tuple[str, ...] = (
    *(_directory(m.__file__) for m in (sqlalchemy, anyio, asyncio, concurrent.futures)),
    _PACKAGE_DIR,
)
_STDLIB_DIR = os.path.abspath(sysconfig.get_paths()["stdlib"]) + os.sep
# Outside a virtual environment (the official Docker images, pyenv), site-packages lies
# inside the standard library's directory: what is installed there is not stdlib.
_SITE_DIRS: tuple[str, ...] = tuple(
    {
        os.path.abspath(d) + os.sep
        for d in (
            sysconfig.get_paths()["purelib"],
            sysconfig.get_paths()["platlib"],
            *site.getsitepackages(),
        )
    }
)
_LIBRARY_FILES = frozenset(
    os.path.abspath(f)
    for f in (contextlib.__file__, functools.__file__, threading.__file__)
    if f is not None
)
_OPTIONAL = (
    "starlette", "fastapi", "uvicorn", "greenlet", "click", "h11", "httptools", "uvloop",
    "gunicorn", "hypercorn", "httpx", "_pytest", "pluggy", "pytest_asyncio",
)  # fmt: skip

_verdicts: dict[str, bool] = {}


def _library_dirs() -> tuple[str, ...]:
    extra = tuple(
        _directory(getattr(sys.modules[name], "__file__", None))
        for name in _OPTIONAL
        if name in sys.modules
    )
    return _LIBRARY_DIRS + extra


def is_library(filename: str) -> bool:
    """True for frames of pooltender and the libraries between a route and the pool."""
    verdict = _verdicts.get(filename)
    if verdict is None:
        path = os.path.abspath(filename) if not filename.startswith("<") else filename
        verdict = filename.startswith("<") or path in _LIBRARY_FILES or _is_library_path(path)
        if len(_verdicts) < 10_000:
            _verdicts[filename] = verdict
    return verdict


def _is_library_path(path: str) -> bool:
    if path.startswith(_library_dirs()):
        return True
    return path.startswith(_STDLIB_DIR) and not path.startswith(_SITE_DIRS)


def current_greenlet() -> object | None:
    """This thread's running greenlet (``None`` without greenlet): hand it to
    :func:`capture` to walk this thread's stack from another thread."""
    greenlet = sys.modules.get("greenlet")
    return greenlet.getcurrent() if greenlet is not None else None


def _parent_frame(root: object | None) -> FrameType | None:
    """Where the caller of the walked greenlet waits.

    Walking its own stack, a thread asks greenlet for the parent of its current
    greenlet. Another thread's stack (the watchdog's view of the event loop) cannot be
    asked that way: ``getcurrent()`` would answer for the walking thread. For it the
    caller passes ``root``, the greenlet the loop runs in (its main one); while the loop
    runs there, its ``gr_frame`` is ``None`` and the walk ends.
    """
    if root is None:
        greenlet = sys.modules.get("greenlet")
        if greenlet is None:
            return None
        root = greenlet.getcurrent().parent
        if root is None:
            return None
    frame: FrameType | None = getattr(root, "gr_frame", None)
    return frame


def capture(
    start: FrameType | None = None, depth: int = STACK_DEPTH, *, root: object | None = None
) -> Site:
    """The first ``depth`` user frames above ``start`` (default: the caller).

    ``root``: for a frame of another thread, the greenlet that thread's event loop runs
    in (:func:`current_greenlet`, taken on that thread), so the walk can leave a greenlet
    SQLAlchemy started (``run_sync``, the async engines' pool) for the awaiting route.

    After the first user frame, at most :data:`WALK_AFTER_SITE` more frames are
    looked at: the frames near the site are the useful ones, and a request's stack
    ends in dozens of server frames.
    """
    frame: FrameType | None = start if start is not None else getframe(1)
    result: list[tuple[CodeType, int]] = []
    crossed = False
    budget = WALK_AFTER_SITE
    verdicts = _verdicts
    while len(result) < depth:
        if frame is None:
            if crossed:
                break
            frame = _parent_frame(root)
            crossed = True
            if frame is None:
                break
        code = frame.f_code
        library = verdicts.get(code.co_filename)
        if library is None:
            library = is_library(code.co_filename)
        if not library:
            result.append((code, frame.f_lineno))
        elif result:
            budget -= 1
            if budget <= 0:
                break
        frame = frame.f_back
    return tuple(result)


def user_frame(
    frame: FrameType | None, *, root: object | None = None
) -> tuple[CodeType, int] | None:
    """The innermost user frame at or above ``frame`` (e.g. where a thread is stuck)."""
    site = capture(frame, depth=1, root=root) if frame is not None else ()
    return site[0] if site else None


def _relative(filename: str) -> str:
    try:
        relative = os.path.relpath(filename)
    except ValueError:  # another drive on Windows
        return filename
    return filename if relative.startswith("..") else relative


def format_site(site: Site) -> str:
    """``app/main.py:42 in report`` for the innermost user frame; ``?`` when unknown."""
    if not site:
        return "?"
    code, line = site[0]
    return f"{_relative(code.co_filename)}:{line} in {code.co_name}"


def format_stack(site: Site) -> str:
    """The user frames, innermost first, with their source lines (read now, lazily)."""
    lines = []
    for code, line in site:
        source = linecache.getline(code.co_filename, line).strip()
        lines.append(f"  {_relative(code.co_filename)}:{line} in {code.co_name}")
        if source:
            lines.append(f"    {source}")
    return "\n".join(lines)
