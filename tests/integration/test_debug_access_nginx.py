"""Through a real nginx on the same machine, the debug endpoints are refused without a token.

nginx's connection to the app comes from 127.0.0.1, so a rule on the peer address
alone lets everything through. The configurations are the ones people write: the
bare ``proxy_pass`` (HTTP/1.0, no forwarding header), and the same with the usual
``proxy_set_header`` lines. The service is uvicorn with its own defaults (proxy
headers on, trusting 127.0.0.1): what ``uvicorn main:app`` behind nginx runs.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.nginx import Nginx
from tests.support.service import Service

DEBUG_PATHS = ("/debug/pool-stats", "/debug/pool", "/debug/pool/static/dashboard.js", "/metrics")
APP_PATHS = ("/hold?seconds=0", "/health/live", "/health/ready")
TOKEN = "s3cret-token"

CONFIGS = {
    "bare": "proxy_pass http://127.0.0.1:{port};",
    "forwarded-for and host": """\
proxy_pass http://127.0.0.1:{port};
proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
proxy_set_header Host $host;""",
    "every usual header, http 1.1": """\
proxy_pass http://127.0.0.1:{port};
proxy_http_version 1.1;
proxy_set_header Host $host;
proxy_set_header X-Real-IP $remote_addr;
proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
proxy_set_header X-Forwarded-Proto $scheme;""",
}


def start_service(directory: Path, **env: str) -> Service:
    env = {"DATABASE_URL": f"sqlite+aiosqlite:///{directory}/access.db", **env}
    return Service(env, app="tests.apps.smallest:app").start()


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    service = start_service(tmp_path_factory.mktemp("nginx-service"))
    with service:
        yield service


@pytest.fixture(scope="module", params=list(CONFIGS))
def proxy(
    request: pytest.FixtureRequest, service: Service, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Nginx]:
    directives = CONFIGS[request.param].format(port=service.port)
    with Nginx(directives, tmp_path_factory.mktemp("nginx")) as nginx:
        yield nginx


def test_debug_endpoints_are_refused_through_nginx(proxy: Nginx) -> None:
    with httpx.Client(base_url=proxy.url, timeout=10) as client:
        for path in DEBUG_PATHS:
            response = client.get(path)
            assert response.status_code == 403, (path, response.text)
            assert "POOLTENDER_DEBUG_TOKEN" in response.json()["detail"]
            # A client that claims to be local is no better off.
            spoofed = {"X-Forwarded-For": "127.0.0.1", "Host": "localhost"}
            assert client.get(path, headers=spoofed).status_code == 403, path


def test_the_apps_routes_answer_through_nginx(proxy: Nginx) -> None:
    with httpx.Client(base_url=proxy.url, timeout=10) as client:
        for path in APP_PATHS:
            assert client.get(path).status_code == 200, path


def test_direct_loopback_access_still_works(proxy: Nginx, service: Service) -> None:
    with httpx.Client(base_url=service.url, timeout=10) as client:
        for path in DEBUG_PATHS:
            assert client.get(path).status_code == 200, path


def test_with_a_token_nginx_passes_it_and_nothing_else_opens(tmp_path: Path) -> None:
    with start_service(tmp_path, POOLTENDER_DEBUG_TOKEN=TOKEN) as service:
        directives = CONFIGS["forwarded-for and host"].format(port=service.port)
        with (
            Nginx(directives, tmp_path / "nginx") as nginx,
            httpx.Client(base_url=nginx.url, timeout=10) as client,
        ):
            right = {"Authorization": f"Bearer {TOKEN}"}
            for path in DEBUG_PATHS:
                assert client.get(path).status_code == 401, path
                assert client.get(path, headers=right).status_code == 200, path
