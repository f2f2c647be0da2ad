"""Fault: the server takes only some of the warm-up's connections (4 of 8).

The warm-up opens ``pool_size`` connections at once. When some attempts failed before
the others had opened, the others used to finish unowned: never returned, found later
by the garbage collector and reported as a leak of whoever started the app
("checked out ... at uvicorn:8 ... was never returned"). Every connection that opens
must be back in the pool, and the pool must own every connection to the server.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time

import httpx
import pytest
from sqlalchemy.engine import make_url

from pooltender import Database, DatabaseSettings
from tests.support.pg import PG_URL, proxied_url
from tests.support.proxy import Proxy, _close
from tests.support.service import Service

pytestmark = pytest.mark.integration

ACCEPTED = 4


class TakesFour(Proxy):
    """Forwards the first ``ACCEPTED`` connections, each after a delay (a server slow to
    authenticate); resets every later one at once (a server at its connection limit)."""

    def __init__(self) -> None:
        u = make_url(PG_URL)
        super().__init__(u.host or "127.0.0.1", u.port or 5432)
        self.attempts = 0

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.attempts += 1
        if self.attempts > ACCEPTED:
            _close(writer, reset=True)
            return
        await asyncio.sleep(0.3)
        await super()._handle(reader, writer)


async def test_a_partial_warm_up_leaves_no_connection_behind(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    with TakesFour() as proxy:
        settings = DatabaseSettings(url=proxied_url(proxy), pool_size=8, max_overflow=0)
        database = Database(settings)
        await database.start()
        try:
            pool = database.engine.sync_engine.pool
            await asyncio.sleep(0.5)  # any attempt still in flight has ended by now
            gc.collect()
            await asyncio.sleep(0.1)
            assert proxy.attempts == 8  # the check's connection, then 7 more at once
            assert pool.checkedout() == 0  # type: ignore[attr-defined]
            assert pool.checkedin() == ACCEPTED  # type: ignore[attr-defined]
            assert len(proxy.upstream_ports) == ACCEPTED  # the pool owns every one
            assert database.stats().checked_out == 0
        finally:
            await database.stop()
        await asyncio.sleep(0.1)
        assert proxy.upstream_ports == set()  # all closed by stop(), none by the GC
    messages = [record.getMessage() for record in caplog.records]
    assert f"database 'primary': warm-up opened {ACCEPTED} of 8 connections" in "\n".join(messages)
    assert not [m for m in messages if "never returned" in m or "garbage collector" in m]


def test_a_partial_warm_up_in_a_service_reports_no_leak() -> None:
    """What the operator saw: uvicorn's log blaming its own start for a leak."""
    with TakesFour() as proxy:
        env = {"DATABASE_URL": proxied_url(proxy), "DATABASE_POOL_SIZE": "8"}
        with Service(env) as service, httpx.Client(base_url=service.url, timeout=10) as client:
            time.sleep(1.0)  # any attempt still in flight has ended by now
            assert [client.get(f"/users/{i}").status_code for i in range(4)] == [200] * 4
            stats = client.get("/debug/pool-stats").json()["databases"]["primary"]
            assert stats["checked_out"] == 0 and stats["leaks_suspected"] == 0
            assert len(proxy.upstream_ports) == ACCEPTED
            service.stop()
            output = service.output()
    assert f"warm-up opened {ACCEPTED} of 8 connections" in output
    for sign in ("never returned", "garbage collector", "non-checked-in", "Traceback"):
        assert sign not in output, output
