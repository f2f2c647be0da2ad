"""Secrets: a run whose URL carries a password never shows that password.

Everything a user or an operator can see is collected: the service's log output
(start-up, degraded start, outage, stop), every HTTP body (answers, 503s, health,
and the stats/metrics endpoints when the app mounts them), the CLI's output when the
CLI is installed, and, in-process, every log record, error message and repr.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import time

import httpx
import pytest
from sqlalchemy import text

from pooltender import Databases, DatabaseSettings, DatabaseUnreachable, StartupError
from tests.support.pg import proxied_url
from tests.support.proxy import Proxy
from tests.support.service import ROOT, Service

pytestmark = pytest.mark.integration

PASSWORD = "pw-7f3a9c-secret"  # trust authentication: the server ignores it


def with_password(url: str) -> str:
    return url.replace("postgres@", f"postgres:{PASSWORD}@")


def test_service_never_shows_the_password(proxy: Proxy) -> None:
    url = with_password(proxied_url(proxy))
    seen: list[str] = []
    proxy.cut(refuse=True)
    env = {
        "DATABASE_URL": url,
        "DATABASE_START_MODE": "degraded",
        "DATABASE_CONNECT_TIMEOUT": "1",
        "DATABASE_POOL_TIMEOUT": "1",
        "DATABASE_ANALYTICS_URL": url,
        "DATABASE_ANALYTICS_START_MODE": "degraded",
    }
    with Service(env) as service, httpx.Client(base_url=service.url, timeout=10) as client:
        paths = [
            "/users/1",
            "/health/ready",
            "/debug/pool-stats",
            "/metrics",
            "/debug/pool",
            "/_pool",
        ]
        seen += [client.get(path).text for path in paths]  # database down
        proxy.restore()
        time.sleep(0.5)
        seen += [client.get(path).text for path in paths]  # up
        proxy.cut(refuse=True)
        seen += [client.get(path).text for path in paths]  # lost mid-life
        proxy.restore()
        service.stop()
        seen.append(service.output())
    assert any("unreachable" in body for body in seen)  # the failures were seen
    for shown in seen:
        assert PASSWORD not in shown


def test_cli_never_shows_the_password(proxy: Proxy) -> None:
    env = {"DATABASE_URL": with_password(proxied_url(proxy)), "PYTHONPATH": str(ROOT / "src")}
    outputs = []
    for args in (
        ["check"],
        ["check", "--json"],
        ["size", "--rps", "100", "--query-ms", "5"],
        ["demo", "--help"],
        ["--help"],
    ):
        result = subprocess.run(
            [sys.executable, "-c", "from pooltender.cli import main; main()", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert PASSWORD not in result.stdout + result.stderr
        outputs.append(result.stdout + result.stderr)
    assert "127.0.0.1" in outputs[0]  # check did talk about the database it was given


@pytest.mark.parametrize("form", ["user-info", "query string"])
async def test_library_never_shows_the_password(
    proxy: Proxy, caplog: pytest.LogCaptureFixture, form: str
) -> None:
    caplog.set_level(logging.DEBUG)
    if form == "user-info":
        url = with_password(proxied_url(proxy))
    else:
        url = f"{proxied_url(proxy)}?password={PASSWORD}"
    settings = DatabaseSettings(url=url, connect_timeout=1, connect_retries=1)
    seen = [repr(settings), str(settings)]
    proxy.cut(refuse=True)
    dbs = Databases.from_settings({"primary": settings})
    with pytest.raises(StartupError) as caught:
        await dbs.start()
    seen += [str(caught.value), repr(caught.value)]
    proxy.restore()
    dbs = Databases.from_settings({"primary": settings})
    await dbs.start()
    seen.append(repr(dbs))
    proxy.cut(refuse=True)
    with pytest.raises(DatabaseUnreachable) as lost:
        async with dbs.primary.session() as session:
            await session.execute(text("SELECT 1"))
    seen += [str(lost.value), repr(lost.value)]
    proxy.restore()
    await dbs.stop()
    seen += [record.getMessage() for record in caplog.records]
    assert len(seen) > 8
    for shown in seen:
        assert PASSWORD not in shown
