"""Who may read the debug endpoints and ``/metrics``: :class:`DebugAccess`.

With ``POOLTENDER_DEBUG_TOKEN`` set, a request needs ``Authorization: Bearer <token>``
(compared in constant time), wherever it comes from; otherwise ``401``.

Without a token, a request is answered only when all of these hold; otherwise ``403``:

1. its TCP peer is a loopback address (``127.0.0.0/8``, ``::1``, ``::ffff:127.x.x.x``);
   a UNIX-socket peer has none and is refused;
2. it carries no forwarding header (:data:`FORWARDING_HEADERS`, any ``X-Forwarded*``),
   whatever its value, an empty one too;
3. it has exactly one ``Host`` header, naming loopback: ``localhost``, an IPv4 address in
   ``127.0.0.0/8`` or ``[::1]``, with or without a port;
4. it is HTTP/1.1 or later (nginx's ``proxy_pass`` speaks HTTP/1.0 unless told otherwise).

The rule reads the scope the ASGI server hands over. uvicorn's proxy-header handling
(on by default, for peers in ``--forwarded-allow-ips``) rewrites ``scope["client"]``
from ``X-Forwarded-For`` (and ``scope["scheme"]`` from ``X-Forwarded-Proto``) but keeps
both headers in ``scope["headers"]``: a rewritten address always comes with the header
that rule 2 refuses. A forwarder that adds no header and speaks HTTP/1.1 (a TCP relay,
``ssh -L``, nginx with ``proxy_http_version 1.1`` and no ``proxy_set_header``) cannot be
told from a local client by any rule: behind one, set a token.
"""

# No ``from __future__ import annotations`` here: FastAPI before 0.12x cannot resolve a
# string annotation on a callable instance's ``__call__`` and would take ``request``
# for a query parameter.
import hmac
import ipaddress
import re

from fastapi import HTTPException, Request
from starlette.types import Scope

from ..settings import check_debug_token

__all__ = ["FORWARDING_HEADERS", "DebugAccess", "is_direct_loopback"]

FORWARDING_HEADERS: frozenset[bytes] = frozenset(
    {
        b"forwarded",  # RFC 7239
        b"via",
        b"x-real-ip",  # nginx, ingress-nginx
        b"x-original-forwarded-for",  # ingress-nginx
        b"x-client-ip",
        b"x-cluster-client-ip",
        b"client-ip",
        b"true-client-ip",  # Akamai, Cloudflare
        b"cf-connecting-ip",  # Cloudflare
        b"fastly-client-ip",
        b"x-envoy-external-address",
    }
)
"""Header names (lower case) that only a proxy sends; any ``x-forwarded*`` name too."""
_FORWARDING_PREFIX = b"x-forwarded"

_HTTP_VERSIONS = frozenset({"1.1", "2", "3"})
_HOST = re.compile(
    r"(?:localhost|(?P<v4>[0-9]{1,3}(?:\.[0-9]{1,3}){3})|\[(?P<v6>[0-9a-f:.]+)\])(?::[0-9]{1,5})?",
    re.IGNORECASE,
)

FORBIDDEN = (
    "pooltender debug endpoints answer only requests made directly on this machine "
    "(to 127.0.0.1 or localhost, not through a proxy) while no token is set; to reach them "
    "from elsewhere, set POOLTENDER_DEBUG_TOKEN and send `Authorization: Bearer <token>`"
)
UNAUTHORIZED = (
    "pooltender debug endpoints need `Authorization: Bearer <token>` (POOLTENDER_DEBUG_TOKEN)"
)


class DebugAccess:
    """The dependency guarding the debug routes: the token, or the loopback rule.

    ``token``: ``POOLTENDER_DEBUG_TOKEN``; ``None`` means the loopback rule (module
    docstring). A token that could never match (empty, blank, not printable ASCII)
    is a :class:`~pooltender.errors.ConfigurationError` here, at start.
    """

    def __init__(self, token: str | None) -> None:
        self._token = None if token is None else check_debug_token(token).encode()

    def __call__(self, request: Request) -> None:
        if self._token is None:
            if not is_direct_loopback(request.scope):
                raise HTTPException(status_code=403, detail=FORBIDDEN)
            return
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        # Starlette decodes header values as latin-1: encoding back gives the bytes sent.
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            given.strip().encode("latin-1"), self._token
        ):
            raise HTTPException(
                status_code=401, detail=UNAUTHORIZED, headers={"WWW-Authenticate": "Bearer"}
            )


def is_direct_loopback(scope: Scope) -> bool:
    """Whether a request meets the loopback rule (the module docstring's four points)."""
    client = scope.get("client")
    if not client or not _loopback_address(str(client[0])):
        return False
    if scope.get("http_version") not in _HTTP_VERSIONS:
        return False
    hosts: list[bytes] = []
    for raw_name, value in scope.get("headers") or ():
        name = bytes(raw_name).lower()
        if name in FORWARDING_HEADERS or name.startswith(_FORWARDING_PREFIX):
            return False
        if name == b"host":
            hosts.append(bytes(value))
    return len(hosts) == 1 and _loopback_host(hosts[0].decode("latin-1").strip())


def _loopback_host(host: str) -> bool:
    match = _HOST.fullmatch(host)
    if match is None:
        return False
    address = match["v4"] or match["v6"]
    return address is None or _loopback_address(address)  # None: localhost


def _loopback_address(text: str) -> bool:
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback
