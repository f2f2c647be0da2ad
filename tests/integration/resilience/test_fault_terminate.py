"""Fault 2: every pooled connection terminated server-side between requests."""

from __future__ import annotations

import time

import httpx
import psycopg
import pytest

from tests.support.pg import backends_behind, proxied_url
from tests.support.proxy import Proxy
from tests.support.service import Service

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("driver", ["asyncpg", "psycopg"])
def test_terminated_backends_cost_no_request(
    driver: str, proxy: Proxy, admin: psycopg.Connection
) -> None:
    url = proxied_url(proxy).replace("+asyncpg", f"+{driver}")
    with (
        Service({"DATABASE_URL": url, "DATABASE_POOL_SIZE": "5"}) as service,
        httpx.Client(base_url=service.url, timeout=10) as client,
    ):
        for round_ in range(3):
            before = backends_behind(admin, proxy)
            assert len(before) >= 1
            killed = admin.execute(
                "SELECT count(*) FROM"
                " (SELECT pg_terminate_backend(pid) FROM unnest(%s::int[]) pid) t",
                (before,),
            ).fetchone()
            assert killed == (len(before),)
            deadline = time.monotonic() + 5
            while set(before) & set(backends_behind(admin, proxy)) and time.monotonic() < deadline:
                time.sleep(0.05)
            statuses = [client.get(f"/users/{i}").status_code for i in range(20)]
            assert statuses == [200] * 20, (round_, statuses)
        assert client.get("/_pool").json()["checked_out"] == 0
