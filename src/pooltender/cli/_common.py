"""What every verb shares: one-line errors with exit code 2, the stats client, formatting."""

from __future__ import annotations

import os
import re
import sys
import unicodedata
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import typer
import typer.core

from ..errors import ConfigurationError
from ..settings import check_debug_token
from ..stats import Snapshot

__all__ = [
    "EXIT_BAD_INPUT",
    "EXIT_FAILED",
    "CliError",
    "OneLineErrorGroup",
    "auth_headers",
    "fetch_stats",
    "fmt_seconds",
    "sanitize",
    "stats_url",
]

EXIT_FAILED = 1
"""A check failed (``pooltender check``): the input was fine, the system is not."""
EXIT_BAD_INPUT = 2
"""Bad input: unknown flag, missing value, unreachable URL."""

TOKEN_ENV = "POOLTENDER_DEBUG_TOKEN"


class CliError(typer.TyperException):
    """An error the user can fix; printed as one line, exit code 2."""

    exit_code = EXIT_BAD_INPUT


class OneLineErrorGroup(typer.core.TyperGroup):
    """Prints every usage or input error as ``pooltender: error: ...`` and exits 2.

    Never a traceback and never a usage box: the first line is the whole message,
    so the command can gate a deploy script and its log stays readable.
    """

    def main(self, args: Sequence[str] | None = None, *posargs: Any, **kwargs: Any) -> Any:
        kwargs["standalone_mode"] = False
        try:
            rv = super().main(args, *posargs, **kwargs)
        except typer.TyperException as exc:
            if type(exc).__name__ == "NoArgsIsHelpError":  # bare `pooltender`: the help
                typer.echo(exc.format_message())
                sys.exit(EXIT_BAD_INPUT)
            message = " ".join(exc.format_message().split())
            typer.echo(f"pooltender: error: {message}", err=True)
            sys.exit(exc.exit_code)
        except typer.Abort:
            typer.echo("pooltender: aborted", err=True)
            sys.exit(130)
        sys.exit(rv if isinstance(rv, int) else 0)


def stats_url(url: str) -> str:
    """The snapshot URL of a service: ``http://host:8000`` -> ``.../debug/pool-stats``.

    A URL whose path already ends in ``pool-stats`` is kept as it is.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise CliError(f"{url!r} is not an http(s) URL (expected e.g. http://127.0.0.1:8000)")
    if parts.path.rstrip("/").endswith("pool-stats"):
        return url
    path = parts.path.rstrip("/") + "/debug/pool-stats"
    return urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))


def auth_headers(token: str | None) -> dict[str, str]:
    """``Authorization: Bearer`` with ``--token`` or ``$POOLTENDER_DEBUG_TOKEN``, checked as
    the server checks it (a blank or non-ASCII token is a one-line error, never sent)."""
    variable = "--token" if token is not None else TOKEN_ENV
    value = token if token is not None else os.environ.get(TOKEN_ENV)
    if value is None:
        return {}
    try:
        return {"Authorization": f"Bearer {check_debug_token(value, variable)}"}
    except ConfigurationError as exc:
        raise CliError(str(exc)) from None


def fetch_stats(client: httpx.Client, url: str, token: str | None = None) -> Snapshot:
    """One ``/debug/pool-stats`` snapshot; a :class:`CliError` naming the URL on any failure."""
    try:
        response = client.get(url, headers=auth_headers(token))
    except httpx.HTTPError as exc:
        raise CliError(f"cannot reach {url}: {_reason(exc)}") from None
    if response.status_code in (401, 403):
        raise CliError(f"{url} answered {response.status_code}: pass --token or set {TOKEN_ENV}")
    if response.status_code != 200:
        raise CliError(f"{url} answered {response.status_code}, expected 200")
    try:
        document = response.json()
    except ValueError:
        raise CliError(f"{url} did not answer JSON: is it a /debug/pool-stats URL?") from None
    if not isinstance(document, dict):
        raise CliError(f"{url} did not answer a pool-stats document (no 'databases' object)")
    try:
        return Snapshot.from_json(document)
    except ValueError as exc:
        reason = sanitize(str(exc))
        raise CliError(f"{url} answered a snapshot pooltender cannot read ({reason})") from None


def _reason(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return " ".join(text.split())


def fmt_seconds(value: float | None) -> str:
    """``0.0123`` -> ``12.3 ms``; None -> ``-``."""
    if value is None:
        return "-"
    if value < 0.001:
        return f"{value * 1e6:.0f} µs"
    if value < 1:
        return f"{value * 1e3:.1f} ms"
    return f"{value:.2f} s"


# Terminal escape sequences, whole: CSI (ESC [ or 0x9B ... final byte), OSC/DCS/PM/APC/SOS
# (up to their terminator), and the other two-byte ESC sequences.
_ESCAPES = re.compile(
    r"(?:\x1b\[|\x9b)[\x30-\x3f]*[\x20-\x2f]*[\x40-\x7e]?"
    r"|(?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f]).*?(?:\x07|\x1b\\|\x9c|\Z)"
    r"|\x1b[\x20-\x2f]*[\x30-\x7e]?",
    re.DOTALL,
)
# Controls (C0, DEL, C1), format characters (bidi overrides and isolates, zero-width
# characters), lone surrogates, line and paragraph separators.
_HIDDEN = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
_BREAKS = frozenset("\t\n\v\f\r\x85\u2028\u2029")


def sanitize(value: object) -> str:
    """``value`` as text a terminal shows as it is: every string from a service passes here.

    Escape sequences (CSI, OSC, DCS, ... in 7- and 8-bit form) are removed whole;
    tabs and line breaks become a space; every other control or format character
    (C0, DEL, C1, bidi overrides and isolates, zero-width characters) and any lone
    surrogate is removed.
    """
    text = _ESCAPES.sub("", str(value))
    return "".join(
        " " if char in _BREAKS else char
        for char in text
        if char in _BREAKS or unicodedata.category(char) not in _HIDDEN
    )
