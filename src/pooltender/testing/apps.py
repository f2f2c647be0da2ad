"""Point a FastAPI app set up with ``install(app)`` at test databases.

- :func:`override_databases` swaps the app's databases for the block: every
  ``Session``, ``session_for(name)``, ``Connection`` dependency and ``databases(app)``
  then use the test ones. No ``dependency_overrides`` to write.
- :func:`async_client` runs the app on the test's own event loop (lifespan
  included) behind an ``httpx.AsyncClient``: the test and the app share the
  isolated transaction, so the test sees what the app wrote, and nothing stays.

Given *started* databases (the fixtures'), the app borrows them: its lifespan
neither starts nor stops them. Given a *factory*, the app's lifespan builds,
starts and stops its own on whatever loop it runs (``TestClient`` runs the app
on a loop of its own thread), and their connections are leak-checked too.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from typing import Any

import httpx
from fastapi import FastAPI

from ..database import Database
from ..databases import Databases
from ..errors import PooltenderError
from ..fastapi.state import FACTORY_KEY, STATE_KEY
from .checkouts import check_leaks, tracker_for

__all__ = ["async_client", "override_databases"]

DatabasesLike = Database | Mapping[str, Database] | Callable[[], Databases]


class _Borrowed(Databases):
    """Databases owned by someone else (a fixture): the app's lifespan leaves them be."""

    async def start(self) -> None:
        for db in self.values():
            db.engine  # noqa: B018 - raises LifecycleError when not started

    async def stop(self) -> None:
        return None


class _LeakChecked(Databases):
    """Databases built by the app's lifespan, whose connections the running test checks."""

    async def start(self) -> None:
        await super().start()
        for db in self.values():
            check_leaks(tracker_for(db))


def _as_factory(databases: DatabasesLike) -> Callable[[], Databases]:
    if isinstance(databases, Database):
        borrowed = _Borrowed({databases.name: databases})
        return lambda: borrowed
    if isinstance(databases, Mapping):
        borrowed = _Borrowed(databases)
        return lambda: borrowed
    factory = databases
    return lambda: _LeakChecked(factory())


@contextlib.contextmanager
def override_databases(app: FastAPI, databases: DatabasesLike) -> Iterator[None]:
    """Inside the block, ``app`` uses ``databases`` instead of its own.

    ``databases``: a started :class:`Database` (it serves under its own name, e.g.
    ``primary``), a mapping of name to started databases, or a function returning a
    new :class:`Databases` (for ``TestClient``, which runs the app on another loop).
    """
    if not hasattr(app.state, FACTORY_KEY):
        raise PooltenderError(
            "override_databases(app, ...) needs an app set up with pooltender.fastapi.install(app)"
        )
    factory = _as_factory(databases)
    saved = {
        key: getattr(app.state, key) for key in (FACTORY_KEY, STATE_KEY) if hasattr(app.state, key)
    }
    setattr(app.state, FACTORY_KEY, factory)
    if not callable(databases):
        # Started databases serve at once, even when the lifespan is not run.
        setattr(app.state, STATE_KEY, factory())
    try:
        yield
    finally:
        for key in (FACTORY_KEY, STATE_KEY):
            if key in saved:
                setattr(app.state, key, saved[key])
            elif hasattr(app.state, key):
                delattr(app.state, key)


@contextlib.asynccontextmanager
async def async_client(
    app: FastAPI,
    databases: DatabasesLike | None = None,
    *,
    base_url: str = "http://testserver",
    raise_app_exceptions: bool = True,
    **client_options: Any,
) -> AsyncIterator[httpx.AsyncClient]:
    """An ``httpx.AsyncClient`` talking to ``app`` in-process, its lifespan running.

    ``databases`` (optional) are swapped in with :func:`override_databases` first.
    ``raise_app_exceptions=False``: an exception the app does not handle reaches the
    test as the app's ``500`` answer instead of being raised (as ``TestClient``'s
    ``raise_server_exceptions``).
    """
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=raise_app_exceptions)
    with contextlib.ExitStack() as stack:
        if databases is not None:
            stack.enter_context(override_databases(app, databases))
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=transport, base_url=base_url, **client_options) as client,
        ):
            yield client
