"""Fault 5: the client goes away in the middle of a slow query (the default: the route
runs to its end; with ``cancel_abandoned=True``: ``test_abandoned_requests.py``)."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from tests.support.pg import PG_URL
from tests.support.service import Service

pytestmark = pytest.mark.integration


async def pool_status(url: str) -> dict[str, int]:
    async with httpx.AsyncClient(base_url=url) as client:
        result: dict[str, int] = (await client.get("/_pool")).json()
        return result


async def test_client_disconnect_returns_the_connection() -> None:
    env = {"DATABASE_URL": PG_URL, "DATABASE_POOL_SIZE": "3", "DATABASE_MAX_OVERFLOW": "2"}
    with Service(env) as service:
        async with httpx.AsyncClient(base_url=service.url, timeout=0.3) as client:

            async def give_up() -> None:
                with pytest.raises(httpx.ReadTimeout):
                    await client.get("/sleep", params={"seconds": 1.0})

            await asyncio.gather(*(give_up() for _ in range(5)))

        status = await pool_status(service.url)
        assert status["checked_out"] > 0  # the slow queries are still running
        deadline = time.monotonic() + 5
        while status["checked_out"] and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
            status = await pool_status(service.url)
        assert status["checked_out"] == 0
        async with httpx.AsyncClient(base_url=service.url) as client:
            assert (await client.get("/users/1")).status_code == 200
        service.stop()
        output = service.output()
        assert "garbage collector" not in output
        assert "Traceback" not in output
