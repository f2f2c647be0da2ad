"""The loopback rule against a real uvicorn that trusts every proxy header.

``--proxy-headers --forwarded-allow-ips='*'``: uvicorn sets the client address of every
request to the first ``X-Forwarded-For`` entry, so a request from this machine that
claims to be forwarded for 127.0.0.1 reaches the app with a loopback client. It must
be refused all the same, and so must a name that is not loopback (DNS rebinding).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.raw_http import raw_status
from tests.support.service import Service

DEBUG_PATHS = ("/debug/pool-stats", "/debug/pool", "/metrics")
TRUST_EVERY_PROXY = ["--proxy-headers", "--forwarded-allow-ips", "*"]
TOKEN = "s3cret-token"


def sqlite_env(tmp_path: Path, **more: str) -> dict[str, str]:
    return {"DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/access.db", **more}


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    env = sqlite_env(tmp_path_factory.mktemp("uvicorn-access"))
    with Service(env, app="tests.apps.smallest:app", args=TRUST_EVERY_PROXY) as service:
        yield service


@pytest.mark.parametrize(
    "spoofed",
    [
        {"X-Forwarded-For": "127.0.0.1"},
        {"X-Forwarded-For": "::1"},
        {"X-Forwarded-For": "localhost"},
        {"X-Forwarded-For": "127.0.0.1, 203.0.113.9"},
        {"X-Forwarded-For": "127.0.0.1", "X-Forwarded-Proto": "https"},
        {"Forwarded": "for=127.0.0.1"},
        {"X-Real-IP": "127.0.0.1"},
        {"Via": "1.1 proxy"},
        {"Host": "evil.example"},
        {"Host": "evil.example:8000", "X-Forwarded-For": "127.0.0.1"},
    ],
)
def test_spoofed_requests_are_refused(service: Service, spoofed: dict[str, str]) -> None:
    with httpx.Client(base_url=service.url, timeout=10) as client:
        for path in DEBUG_PATHS:
            assert client.get(path, headers=spoofed).status_code == 403, (path, spoofed)
        assert client.get("/hold", params={"seconds": 0}, headers=spoofed).status_code == 200
        assert client.get("/health/live", headers=spoofed).status_code == 200


def test_an_empty_forwarding_header_or_http_1_0_is_refused(service: Service) -> None:
    host = f"Host: 127.0.0.1:{service.port}\r\n".encode()
    empty_xff = b"GET /debug/pool-stats HTTP/1.1\r\n" + host + b"X-Forwarded-For:\r\n\r\n"
    assert raw_status(service.port, empty_xff) == 403
    http_1_0 = b"GET /debug/pool-stats HTTP/1.0\r\n" + host + b"\r\n"
    assert raw_status(service.port, http_1_0) == 403
    assert raw_status(service.port, b"GET /health/live HTTP/1.0\r\n" + host + b"\r\n") == 200
    direct = b"GET /debug/pool-stats HTTP/1.1\r\n" + host + b"Connection: close\r\n\r\n"
    assert raw_status(service.port, direct) == 200


def test_a_direct_request_is_answered(service: Service) -> None:
    for base in (service.url, f"http://localhost:{service.port}"):
        with httpx.Client(base_url=base, timeout=10) as client:
            for path in DEBUG_PATHS:
                assert client.get(path).status_code == 200, (base, path)


def test_with_a_token_spoofing_does_not_help_and_the_token_works(tmp_path: Path) -> None:
    env = sqlite_env(tmp_path, POOLTENDER_DEBUG_TOKEN=TOKEN)
    with (
        Service(env, app="tests.apps.smallest:app", args=TRUST_EVERY_PROXY) as service,
        httpx.Client(base_url=service.url, timeout=10) as client,
    ):
        spoofed = {"X-Forwarded-For": "127.0.0.1"}
        for path in DEBUG_PATHS:
            assert client.get(path).status_code == 401
            assert client.get(path, headers=spoofed).status_code == 401
            right = {**spoofed, "Host": "evil.example", "Authorization": f"Bearer {TOKEN}"}
            assert client.get(path, headers=right).status_code == 200


@pytest.mark.parametrize(
    ("value", "reason"),
    [("", "is empty"), ("  ", "is empty"), ("tökén", "must be printable ASCII")],
)
def test_a_token_that_cannot_work_stops_the_start(tmp_path: Path, value: str, reason: str) -> None:
    """Not loopback mode, not a service no token opens: it does not start, and says why."""
    service = Service(
        sqlite_env(tmp_path, POOLTENDER_DEBUG_TOKEN=value), app="tests.apps.smallest:app"
    )
    try:
        with pytest.raises(RuntimeError, match="service exited with"):
            service.start()
        output = service.output()
    finally:
        service.__exit__()
    # pooltender's one line first, then the server's traceback ending in the same error.
    first, *others = [line for line in output.splitlines() if "POOLTENDER_DEBUG_TOKEN" in line]
    assert first.startswith(f"pooltender could not start: POOLTENDER_DEBUG_TOKEN: {reason}")
    assert any(f"ConfigurationError: POOLTENDER_DEBUG_TOKEN: {reason}" in line for line in others)
    if value.strip():
        assert value not in output
