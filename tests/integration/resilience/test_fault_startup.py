"""Fault 7: the service starts while the database is down."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.support.pg import proxied_url
from tests.support.proxy import Proxy
from tests.support.service import Service

pytestmark = pytest.mark.integration


def test_strict_start_fails_clearly_within_bound(proxy: Proxy) -> None:
    proxy.cut(refuse=True)
    env = {
        "DATABASE_URL": proxied_url(proxy).replace("postgres@", "postgres:s3cret-pw@"),
        "DATABASE_CONNECT_TIMEOUT": "1",
        "DATABASE_CONNECT_RETRIES": "2",
    }
    service = Service(env, wait=False)
    started = time.monotonic()
    with service:
        assert service.process is not None
        returncode = service.process.wait(15)
        elapsed = time.monotonic() - started
        output = service.output()
    assert returncode != 0
    # 3 attempts, 0.25 s + 0.5 s apart, each refused at once; plus interpreter start-up.
    assert elapsed < 10
    assert f"database 'primary' at 127.0.0.1:{proxy.port}/test is not reachable" in output
    assert "attempt 1 of 3" in output
    assert "s3cret-pw" not in output


def test_degraded_start_turns_ready_without_restart(proxy: Proxy) -> None:
    proxy.cut(refuse=True)
    env = {
        "DATABASE_URL": proxied_url(proxy),
        "DATABASE_START_MODE": "degraded",
        "DATABASE_CONNECT_TIMEOUT": "1",
        "DATABASE_POOL_TIMEOUT": "2",
    }
    with Service(env) as service, httpx.Client(base_url=service.url, timeout=5) as client:
        assert client.get("/health/live").status_code == 200
        ready = client.get("/health/ready")
        assert ready.status_code == 503
        assert "primary" in ready.json()["failing"]
        answer = client.get("/users/1")
        assert answer.status_code == 503
        assert answer.json()["detail"]["reason"] == "unreachable"

        proxy.restore()
        deadline = time.monotonic() + 5
        while client.get("/health/ready").status_code != 200:
            assert time.monotonic() < deadline, "never turned ready"
            time.sleep(0.1)
        assert client.get("/users/1").status_code == 200
        assert service.process is not None
        assert service.process.poll() is None
        assert "started degraded" in service.output()
