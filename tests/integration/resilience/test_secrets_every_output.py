"""A password in either form of a URL (user-info, query string) is in no output of a run.

One run per form: a real uvicorn service (logs at DEBUG, the engine's own line
included) with two databases behind a proxy that is cut, restored and cut again;
every body of every pooltender path in each state (503s, ``/health/*``,
``/debug/pool-stats``, ``/debug/pool``, ``/metrics``); the CLI against the same URLs
(``check``, ``check --json``) and against the service (``top --once``, ``size --from``);
``repr``/``str`` of the settings. The password (and its percent-encoded form) is in none
of it. A raw ``@`` in the password stops the start, and neither the error nor anything
else printed holds a piece of the password. Anonymous bodies name the database and the
reason, never the host or port, which the log does carry.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from sqlalchemy.engine import make_url

from pooltender import load_database_settings
from tests.support.pg import proxied_url
from tests.support.proxy import Proxy
from tests.support.service import ROOT, Service

pytestmark = pytest.mark.integration

# Trust authentication: PostgreSQL ignores the password, so each form reaches the server.
PASSWORD = "S3cret@7f/9c%x"
FORMS = {
    "user-info": lambda url: url.replace("postgres@", f"postgres:{quote(PASSWORD, safe='')}@"),
    "query string": lambda url: f"{url}?password={quote(PASSWORD, safe='')}",
}
PATHS = [
    "/users/1",
    "/health/live",
    "/health/ready",
    "/debug/pool-stats",
    "/debug/pool",
    "/metrics",
]
ANONYMOUS = ["/users/1", "/health/ready"]

LOG_CONFIG = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(levelname)s %(name)s %(message)s"}},
    "handlers": {"err": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"level": "DEBUG", "handlers": ["err"]},
}


def leaked(text: str) -> list[str]:
    """The forms of the password that appear in ``text``."""
    forms = {PASSWORD, quote(PASSWORD, safe=""), quote(PASSWORD), "S3cret"}
    return [form for form in forms if form in text]


def cli(*args: str, env: dict[str, str]) -> str:
    result = subprocess.run(
        [sys.executable, "-c", "from pooltender.cli import main; main()", *args],
        env={"PYTHONPATH": str(ROOT / "src"), "COLUMNS": "200", **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert "Traceback" not in result.stderr, result.stderr
    return result.stdout + result.stderr


@pytest.mark.parametrize("form", sorted(FORMS))
def test_no_output_of_a_run_shows_the_password(proxy: Proxy, tmp_path: Path, form: str) -> None:
    url = FORMS[form](proxied_url(proxy))
    assert make_url(url).password == PASSWORD or make_url(url).query["password"] == PASSWORD
    where = f"127.0.0.1:{proxy.port}"
    log_config = tmp_path / "logging.json"
    log_config.write_text(json.dumps(LOG_CONFIG))
    env = {
        "DATABASE_URL": url,
        "DATABASE_START_MODE": "degraded",
        "DATABASE_CONNECT_TIMEOUT": "1",
        "DATABASE_POOL_TIMEOUT": "1",
        "DATABASE_ANALYTICS_URL": url,
        "DATABASE_ANALYTICS_START_MODE": "degraded",
    }
    seen: dict[str, str] = {}
    anonymous: dict[str, httpx.Response] = {}
    proxy.cut(refuse=True)
    with (
        Service(env, args=["--log-config", str(log_config)]) as service,
        httpx.Client(base_url=service.url, timeout=10) as client,
    ):
        for state in ("down", "up", "lost"):
            if state == "up":
                proxy.restore()
                time.sleep(0.5)
            if state == "lost":
                proxy.cut(refuse=True)
            for path in PATHS:
                response = client.get(path)
                seen[f"{state} {path}"] = response.text
                if path in ANONYMOUS and response.status_code == 503:
                    anonymous[f"{state} {path}"] = response
        proxy.restore()
        time.sleep(0.5)
        seen["check"] = cli("check", env=env)
        seen["check --json"] = cli("check", "--json", env=env)
        seen["top"] = cli("top", service.url, "--once", env={})
        seen["size --from"] = cli("size", "--from", service.url, "--interval", "0.5", env={})
        service.stop()
        seen["service output"] = output = service.output()
    settings = load_database_settings(env, env_file=None)
    seen.update({f"repr {n}": repr(s) for n, s in settings.items()})
    seen.update({f"str {n}": str(s) for n, s in settings.items()})

    # The run did produce what is grepped: DEBUG logs with the engine's own line,
    # failures while the database was down, the masked URL in the snapshot and the CLI.
    assert seen["up /users/1"] == '{"id":1}'  # the database was reached with that URL
    assert "DEBUG pooltender.engine engine for database 'primary'" in output
    assert "***" in seen["up /debug/pool-stats"] and "***" in seen["check"]
    assert json.loads(seen["check --json"])["databases"]
    assert "primary" in seen["top"] and "DATABASE_POOL_SIZE" in seen["size --from"]
    assert {"down /users/1", "down /health/ready", "lost /users/1"} <= set(anonymous)
    for name, text in seen.items():
        assert not leaked(text), f"{name} shows {leaked(text)}"

    # Anonymous clients: the database and the reason; the host and the driver's words
    # stay in the log.
    for name, response in anonymous.items():
        body = response.text
        assert where not in body and str(proxy.port) not in body, (name, body)
        assert "127.0.0.1" not in body and "Error" not in body, (name, body)
        if "/health/ready" in name:
            assert response.json()["failing"] == {
                "primary": "unreachable",
                "analytics": "unreachable",
            }
        else:
            assert response.json()["detail"] == {
                "database": "primary",
                "reason": "unreachable",
                "message": "database 'primary' is unreachable",
            }
    assert f"database 'primary' at {where}/test is unreachable" in output
    stats = json.loads(seen["up /debug/pool-stats"])["databases"]["primary"]
    assert stats["server"] == f"{where}/test"  # the authorised view names the server
    assert "/health/ready: database 'primary' is not ready: DatabaseUnreachable" in output


def test_a_raw_at_in_the_password_stops_the_start_and_shows_none_of_it(proxy: Proxy) -> None:
    url = proxied_url(proxy).replace("postgres@", "postgres:hunter2@evil.example@")
    service = Service({"DATABASE_URL": url})
    try:
        with pytest.raises(RuntimeError, match="service exited with"):
            service.start()
        output = service.output()
    finally:
        service.__exit__()
    [line] = [line for line in output.splitlines() if line.startswith("pooltender.errors.")]
    assert "DATABASE_URL: has more than one '@' before the host" in line
    assert "percent-encoded as %40" in line
    checked = cli("check", env={"DATABASE_URL": url})
    assert checked.startswith("pooltender: error: DATABASE_URL: has more than one '@'")
    for text in (output, checked):
        assert "hunter2" not in text and "evil" not in text


async def test_a_password_the_driver_cannot_encode_is_not_named(mariadb_url: str) -> None:
    """aiomysql sends the password in latin-1: its UnicodeEncodeError named the character
    and its position."""
    from pooltender import Database, DatabaseSettings, StartupError

    url = make_url(mariadb_url).set(password="Kl€ng-pw").render_as_string(hide_password=False)
    database = Database(DatabaseSettings(url=url, connect_retries=0))
    with pytest.raises(StartupError) as caught:
        await database.start()
    checked = cli("check", env={"DATABASE_URL": url})
    for text in (str(caught.value), checked):
        assert "cannot send a character of the connection settings" in text, text
        for piece in ("€", "\\u20ac", "\\xe2", "Kl", "position"):
            assert piece not in text, (piece, text)
