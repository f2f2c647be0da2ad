"""Credentials in URLs, and the one function every output uses to hide them.

A URL carries credentials in two places: the user-info password
(``postgresql://app:S3cret@db/app``) and query keys the drivers read as credentials
(``?password=S3cret``, ``?sslpassword=...``; asyncpg, psycopg and the MySQL drivers all
accept them). :func:`redact_url` masks both; :func:`credentials` lists their values so
that a driver's error message that quotes one can be masked too (:func:`mask`).

The redacted form is for reading: the query's ``:`` and ``/`` are shown as they are
written (``?host=db1:5432&host=db2:5432``, ``?host=/var/run/postgresql``), not
percent-encoded as SQLAlchemy renders them; both are legal in a URL's query.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

__all__ = ["MASK", "credentials", "is_credential_key", "mask", "redact_url"]

MASK = "***"

# Query keys that carry a secret, as the drivers name them (libpq's password and
# sslpassword, asyncpg's password, MySQL's password/passwd), plus the generic names
# of tokens and secrets that other drivers and proxies accept.
_CREDENTIAL_KEYS = frozenset({"password", "passwd", "pwd", "sslpassword", "passphrase"})
_CREDENTIAL_PARTS = ("password", "secret", "token", "apikey", "api_key")


def is_credential_key(key: str) -> bool:
    """True for a URL query key whose value is a credential."""
    lowered = key.lower()
    return lowered in _CREDENTIAL_KEYS or any(part in lowered for part in _CREDENTIAL_PARTS)


def credentials(url: URL) -> list[str]:
    """Every credential value of ``url`` (user-info password, credential query values)."""
    found = [str(url.password)] if url.password else []
    for key, value in url.query.items():
        if is_credential_key(key):
            values = (value,) if isinstance(value, str) else tuple(value)
            found.extend(v for v in values if v)
    return found


def redact_url(url: URL | str) -> str:
    """The URL as text with every credential replaced by ``***``."""
    if isinstance(url, str):
        raw = url
        try:
            url = make_url(raw)
        except (ArgumentError, ValueError):
            # Not parseable: mask anything between "://user:" and the last "@" of the
            # authority, and every credential-looking query value.
            text = re.sub(r"(://[^:/@]*:).*@", r"\1" + MASK + "@", raw)
            return re.sub(
                r"([?&][^=&#]*(?:password|passwd|pwd|secret|token)[^=&#]*=)[^&#]*",
                r"\1" + MASK,
                text,
                flags=re.I,
            )
    placeholder = "pooltenderMASKED"  # rendered as is (``*`` would be percent-encoded)
    query = {
        key: (placeholder if is_credential_key(key) else value) for key, value in url.query.items()
    }
    masked = url.set(query=query) if query != dict(url.query) else url
    return _readable_query(masked.render_as_string(hide_password=True).replace(placeholder, MASK))


# Percent-encodings SQLAlchemy writes in a query that need none there (RFC 3986 allows
# ":" and "/" in a query): multi-host ``host=db1:5432``, socket directories.
_READABLE = re.compile("%(3A|2F)", re.I)


def _readable_query(text: str) -> str:
    head, question, query = text.partition("?")
    if not question:
        return text
    return head + question + _READABLE.sub(lambda m: ":" if m[1].upper() == "3A" else "/", query)


def mask(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every one of ``secrets`` (and its URL-encoded form) replaced by ``***``."""
    from urllib.parse import quote

    for secret in sorted(set(secrets), key=len, reverse=True):
        if secret:
            text = text.replace(secret, MASK)
            encoded = quote(secret, safe="")
            if encoded != secret:
                text = text.replace(encoded, MASK)
    return text
