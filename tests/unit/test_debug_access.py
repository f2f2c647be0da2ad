"""The debug endpoints' access rule (README, Security), request by request.

Without a token a request is answered only when its TCP peer is loopback, it carries
no forwarding header, its ``Host`` names loopback and it is HTTP/1.1 or later. Each
bypass a reverse proxy or a rebinding page could open is refused here, with the
scope an ASGI server would hand over (uvicorn's proxy headers rewrite the client
from ``X-Forwarded-For`` and keep the header: that is what these scopes carry).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text

from pooltender import ConfigurationError, Database, Databases, DatabaseSettings
from pooltender import PooltenderSettings as Options
from pooltender.fastapi import Session, install
from pooltender.fastapi.access import FORWARDING_HEADERS, DebugAccess

README = Path(__file__).resolve().parents[2] / "README.md"

DEBUG_PATHS = ("/debug/pool-stats", "/debug/pool", "/debug/pool/static/dashboard.js", "/metrics")
LOOPBACK = ("127.0.0.1", 41000)
DIRECT = "127.0.0.1:8000"
TOKEN = "s3cret-token"


def make_app(tmp_path: Path, token: str | None = None) -> FastAPI:
    app = FastAPI()
    url = f"sqlite+aiosqlite:///{tmp_path}/access.db"
    dbs = Databases({"primary": Database(DatabaseSettings(url=url), pooltender_settings=Options())})
    install(app, dbs, pooltender_settings=Options(debug_token=token, loop_block_threshold=0))

    @app.get("/users/{user_id}")
    async def get_user(user_id: int, session: Session) -> dict[str, int]:
        return {"id": (await session.execute(text("SELECT :v"), {"v": user_id})).scalar_one()}

    return app


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[FastAPI]:
    app = make_app(tmp_path)
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
async def token_app(tmp_path: Path) -> AsyncIterator[FastAPI]:
    app = make_app(tmp_path, TOKEN)
    async with app.router.lifespan_context(app):
        yield app


async def statuses(
    app: FastAPI,
    headers: Sequence[tuple[str, str]],
    *,
    client: tuple[str, int] | None = LOOPBACK,
    http_version: str = "1.1",
    paths: Sequence[str] = DEBUG_PATHS,
) -> set[int]:
    """The statuses of ``paths`` for a request with exactly this scope (raw ASGI)."""
    seen: set[int] = set()
    for path in paths:
        scope: dict[str, Any] = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": http_version,
            "method": "GET",
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
            "root_path": "",
            "headers": [(k.lower().encode(), v.encode("latin-1")) for k, v in headers],
            "client": client,
            "server": ("127.0.0.1", 8000),
            "state": {},
        }
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict[str, Any], sent: list[dict[str, Any]] = sent) -> None:
            sent.append(message)

        await app(scope, receive, send)
        seen.add(next(m["status"] for m in sent if m["type"] == "http.response.start"))
    return seen


def via_httpx(app: FastAPI, client: tuple[str, int] = LOOPBACK) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=client)
    return httpx.AsyncClient(transport=transport, base_url=f"http://{DIRECT}")


@pytest.mark.parametrize(
    "forwarding",
    [
        ("X-Forwarded-For", "127.0.0.1"),
        ("X-Forwarded-For", "::1"),
        ("X-Forwarded-For", "localhost"),
        ("X-Forwarded-For", "127.0.0.1, 203.0.113.9"),
        ("X-Forwarded-For", ""),
        ("Forwarded", "for=127.0.0.1"),
        ("Forwarded", 'for="[::1]";proto=http'),
        ("X-Real-IP", "127.0.0.1"),
        ("Via", "1.1 nginx"),
        ("X-Forwarded-Host", "localhost"),
        ("X-Forwarded-Proto", "http"),
        ("X-Forwarded-Port", "8000"),
        ("True-Client-IP", "127.0.0.1"),
        ("CF-Connecting-IP", "127.0.0.1"),
    ],
)
async def test_a_forwarding_header_is_refused_without_a_token(
    app: FastAPI, forwarding: tuple[str, str]
) -> None:
    async with via_httpx(app) as c:
        for path in DEBUG_PATHS:
            response = await c.get(path, headers=[forwarding])
            assert response.status_code == 403, (path, forwarding)
            assert "POOLTENDER_DEBUG_TOKEN" in response.json()["detail"]
        # The app's own routes do not care.
        assert (await c.get("/users/7", headers=[forwarding])).json() == {"id": 7}
        assert (await c.get("/health/live", headers=[forwarding])).status_code == 200


async def test_forwarding_header_names_are_matched_in_any_case(app: FastAPI) -> None:
    assert await statuses(app, [("Host", DIRECT), ("X-FORWARDED-FOR", "127.0.0.1")]) == {403}


@pytest.mark.parametrize(
    "host",
    [
        "evil.example",
        "evil.example:8000",
        "127.0.0.1.nip.io",
        "localhost.evil.example",
        "evil.localhost",
        "127.1",
        "2130706433",
        "10.0.0.1:8000",
        "[::2]:8000",
        "::1",
        "localhost:http",
        "",
    ],
)
async def test_a_host_that_is_not_loopback_is_refused(app: FastAPI, host: str) -> None:
    """DNS rebinding: a page of evil.example resolved to 127.0.0.1 sends its own name."""
    assert await statuses(app, [("Host", host)]) == {403}


async def test_no_host_or_two_hosts_are_refused(app: FastAPI) -> None:
    assert await statuses(app, []) == {403}
    assert await statuses(app, [("Host", DIRECT), ("Host", "evil.example")]) == {403}


@pytest.mark.parametrize("client", [("10.1.2.3", 5000), ("203.0.113.9", 1), None])
async def test_a_peer_that_is_not_loopback_is_refused(
    app: FastAPI, client: tuple[str, int] | None
) -> None:
    """``None``: a UNIX socket, where a proxy (nginx ``proxy_pass http://unix:...``) may be."""
    assert await statuses(app, [("Host", DIRECT)], client=client) == {403}


async def test_http_1_0_is_refused(app: FastAPI) -> None:
    """nginx's ``proxy_pass`` speaks HTTP/1.0 to the app unless told otherwise."""
    assert await statuses(app, [("Host", DIRECT)], http_version="1.0") == {403}


@pytest.mark.parametrize(
    ("client", "host"),
    [
        (LOOPBACK, "127.0.0.1:8000"),
        (LOOPBACK, "127.0.0.1"),
        (LOOPBACK, "localhost"),
        (LOOPBACK, "LOCALHOST:9000"),  # ssh -L 9000:127.0.0.1:8000
        (("127.0.0.2", 1), "127.0.0.2:8000"),
        (("::1", 5000), "[::1]"),
        (("::1", 5000), "[::1]:8000"),
        (("::ffff:127.0.0.1", 5000), "localhost:8000"),
    ],
)
async def test_a_direct_loopback_request_is_answered(
    app: FastAPI, client: tuple[str, int], host: str
) -> None:
    assert await statuses(app, [("Host", host), ("User-Agent", "curl/8")], client=client) == {200}
    assert await statuses(app, [("Host", host)], client=client, http_version="2") == {200}


async def test_with_a_token_the_token_is_required_whatever_the_peer(token_app: FastAPI) -> None:
    right = ("Authorization", f"Bearer {TOKEN}")
    direct = [("Host", DIRECT)]
    assert await statuses(token_app, direct) == {401}
    assert await statuses(token_app, [*direct, ("Authorization", "Bearer nope")]) == {401}
    assert await statuses(token_app, [*direct, ("Authorization", f"Basic {TOKEN}")]) == {401}
    assert await statuses(token_app, [*direct, right]) == {200}
    proxied = [("Host", "evil.example"), ("X-Forwarded-For", "203.0.113.9"), ("Via", "1.1 x")]
    remote = ("203.0.113.9", 1)
    assert await statuses(token_app, proxied, client=remote, http_version="1.0") == {401}
    assert await statuses(token_app, [*proxied, right], client=remote, http_version="1.0") == {200}


async def test_refusals_say_what_to_do_and_nothing_else(app: FastAPI, token_app: FastAPI) -> None:
    """One 403 text whatever failed: it tells the operator what to do, not a prober which
    check tripped; neither answer names the request's addresses or the databases."""
    async with via_httpx(app, ("127.0.0.9", 1)) as c:
        forwarded = await c.get("/debug/pool-stats", headers={"X-Forwarded-For": "198.51.100.7"})
        rebound = await c.get("/debug/pool-stats", headers={"Host": "evil.example"})
    async with via_httpx(app, ("198.51.100.7", 1)) as c:
        remote = await c.get("/debug/pool-stats")
    async with via_httpx(token_app) as c:
        unauthorized = await c.get("/debug/pool-stats")
    assert [r.status_code for r in (forwarded, rebound, remote)] == [403, 403, 403]
    assert forwarded.json() == rebound.json() == remote.json()
    assert unauthorized.status_code == 401
    assert unauthorized.headers["www-authenticate"] == "Bearer"
    for response in (forwarded, unauthorized):
        detail = response.json()["detail"]
        assert "POOLTENDER_DEBUG_TOKEN" in detail
        assert "Authorization: Bearer <token>" in detail
        for internal in ("127.0.0.9", "198.51.100.7", "evil", "sqlite", "access.db", "primary"):
            assert internal not in detail, internal


# -- the token itself -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("", "is empty"),
        ("   ", "is empty"),
        ("\t\n", "is empty"),
        ("tökén", "printable ASCII"),
        ("two words", "printable ASCII"),
        ("bell\x07ring", "printable ASCII"),
    ],
)
def test_a_token_that_cannot_work_is_refused_at_start(
    value: str, reason: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POOLTENDER_DEBUG_TOKEN", value)
    monkeypatch.chdir(tmp_path)  # no stray .env
    url = f"sqlite+aiosqlite:///{tmp_path}/access.db"
    dbs = Databases({"primary": Database(DatabaseSettings(url=url))})
    with pytest.raises(ConfigurationError) as caught:
        install(FastAPI(), dbs)
    message = str(caught.value)
    assert caught.value.variable == "POOLTENDER_DEBUG_TOKEN"
    assert message.startswith("POOLTENDER_DEBUG_TOKEN: ")
    assert reason in message
    assert "\n" not in message
    if value.strip():
        assert value not in message  # a secret, even a broken one, is not echoed


def test_debug_access_refuses_an_empty_token_too() -> None:
    with pytest.raises(ConfigurationError, match="POOLTENDER_DEBUG_TOKEN: is empty"):
        DebugAccess("")


async def test_surrounding_whitespace_of_the_token_is_not_part_of_it(tmp_path: Path) -> None:
    app = make_app(tmp_path, f"  {TOKEN}\n")
    async with app.router.lifespan_context(app), via_httpx(app, ("203.0.113.9", 1)) as c:
        assert (await c.get("/metrics")).status_code == 401
        right = {"Authorization": f"Bearer {TOKEN}"}
        assert (await c.get("/metrics", headers=right)).status_code == 200


def test_the_readme_lists_exactly_the_refused_headers() -> None:
    security = README.read_text().split("## Security", 1)[1].split("\n## ", 1)[0]
    rule = security.split("  2. ", 1)[1].split("  3. ", 1)[0]
    named = {name.lower().encode() for name in re.findall(r"`([A-Za-z-]+)`", rule)}
    assert named == FORWARDING_HEADERS | {b"x-forwarded", b"-for", b"-host", b"-proto", b"-port"}
