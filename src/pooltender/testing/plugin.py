"""The pytest plugin, registered through the ``pytest11`` entry point.

Fixtures (each test gets its own engine on its own event loop):

- ``sqlite_database``: a started in-memory SQLite :class:`~pooltender.Database`
  (one connection, lent to one user at a time) with ``pooltender_metadata`` created.
- ``postgres_database``: a started :class:`~pooltender.testing.IsolatedDatabase`
  on ``POOLTENDER_TEST_DATABASE_URL`` (default
  ``postgresql+asyncpg://postgres@127.0.0.1:5432/test``): one outer transaction per
  test, sessions in savepoints, everything rolled back at the end.
- ``make_sqlite_database``, ``make_postgres_database``: factories of more of them,
  for a service with several named databases: ``await make_postgres_database(
  "analytics", metadata=AnalyticsBase.metadata)`` gives another started, isolated,
  leak-checked database, stopped (rolled back) with the test. The two fixtures above
  are ``await make_...()``.
- ``pooltender_metadata``: the ``MetaData`` to create; ``None`` unless the ini option
  ``pooltender_metadata = "package.module:Base.metadata"`` is set or the fixture is
  overridden in a ``conftest.py``.

Leak check: a test that ends while a connection of one of these databases (or of
databases built by ``override_databases(app, factory)``) is still checked out
fails, naming each checkout site. ``@pytest.mark.pooltender_allow_leaks`` turns
the check off for one test.

The async fixtures run under pytest-asyncio or anyio's pytest plugin (asyncio backend).
"""

from __future__ import annotations

import contextlib
import importlib
import os
from collections.abc import AsyncIterator, Iterator
from types import EllipsisType
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import pytest
from sqlalchemy import MetaData

from ..database import Database
from ..settings import PRIMARY, DatabaseSettings
from . import checkouts
from .isolation import IsolatedDatabase

__all__ = [
    "DEFAULT_POSTGRES_URL",
    "URL_VARIABLE",
    "DatabaseFactory",
    "make_postgres_database",
    "make_sqlite_database",
    "pooltender_metadata",
    "postgres_database",
    "sqlite_database",
]

URL_VARIABLE = "POOLTENDER_TEST_DATABASE_URL"
DEFAULT_POSTGRES_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
ALLOW_LEAKS = "pooltender_allow_leaks"

D_co = TypeVar("D_co", bound=Database, covariant=True)


class DatabaseFactory(Protocol[D_co]):
    """What ``make_sqlite_database`` and ``make_postgres_database`` give a test.

    ``await make(name="primary", metadata=...)``: a new started database serving
    under ``name``, with ``metadata``'s tables created (default: the
    ``pooltender_metadata`` fixture's; ``None``: none), leak-checked, and stopped when
    the test ends.
    """

    async def __call__(
        self, name: str = PRIMARY, *, metadata: MetaData | EllipsisType | None = ...
    ) -> D_co: ...


if TYPE_CHECKING:
    _async_fixture = pytest.fixture
else:
    try:
        from pytest_asyncio import fixture as _async_fixture
    except ImportError:  # pragma: no cover - the plain decorator; pytest says what is missing
        _async_fixture = pytest.fixture


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(
        "pooltender_metadata",
        "MetaData the pooltender test databases create, as 'module:attribute.path'",
        default="",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{ALLOW_LEAKS}: do not fail the test when it leaves a database connection checked out",
    )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Iterator[None]:
    checkouts._leak_checked.clear()
    return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    result = yield
    if item.get_closest_marker(ALLOW_LEAKS) is None:
        report = checkouts.leak_report()
        if report is not None:
            pytest.fail(report, pytrace=False)
    return result


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item) -> Iterator[None]:
    try:
        return (yield)
    finally:
        checkouts._leak_checked.clear()


def load_metadata(path: str) -> MetaData:
    """``"package.module:Base.metadata"`` -> that ``MetaData``."""
    module_name, _, attributes = path.partition(":")
    target: Any = importlib.import_module(module_name)
    for attribute in filter(None, attributes.split(".")):
        target = getattr(target, attribute)
    if not isinstance(target, MetaData):
        raise TypeError(
            f"pooltender_metadata = {path!r} is a {type(target).__name__}, not MetaData"
        )
    return target


@pytest.fixture
def pooltender_metadata(pytestconfig: pytest.Config) -> MetaData | None:
    """The tables the test databases create (override this fixture, or set the ini option)."""
    path = str(pytestconfig.getini("pooltender_metadata") or "")
    return load_metadata(path) if path else None


@_async_fixture
async def make_sqlite_database(
    pooltender_metadata: MetaData | None,
) -> AsyncIterator[DatabaseFactory[Database]]:
    """Builds started in-memory SQLite databases, each new, leak-checked, stopped after the test."""
    async with contextlib.AsyncExitStack() as started:

        async def make(
            name: str = PRIMARY, *, metadata: MetaData | EllipsisType | None = ...
        ) -> Database:
            # Unbounded waiting: concurrent requests of one test queue for the one connection.
            db = Database(
                DatabaseSettings(
                    name=name, url="sqlite+aiosqlite://", connect_retries=0, max_waiting=-1
                )
            )
            await db.start()
            started.push_async_callback(db.stop)
            tables = pooltender_metadata if metadata is ... else metadata
            if tables is not None:
                async with db.engine.begin() as connection:
                    await connection.run_sync(tables.create_all)
            checkouts.check_leaks(checkouts.tracker_for(db))
            return db

        yield make


@_async_fixture
async def make_postgres_database(
    pooltender_metadata: MetaData | None,
) -> AsyncIterator[DatabaseFactory[IsolatedDatabase]]:
    """Builds started isolated PostgreSQL databases, each rolled back and stopped after the test.

    Each holds a connection of its own to ``POOLTENDER_TEST_DATABASE_URL`` with its own
    outer transaction: like two real databases, neither sees the other's writes. Their
    tables need distinct names (two open transactions creating the same table wait
    on each other).
    """
    url = os.environ.get(URL_VARIABLE, DEFAULT_POSTGRES_URL)
    async with contextlib.AsyncExitStack() as started:

        async def make(
            name: str = PRIMARY, *, metadata: MetaData | EllipsisType | None = ...
        ) -> IsolatedDatabase:
            db = IsolatedDatabase(
                DatabaseSettings(name=name, url=url, connect_retries=0, warmup=0),
                metadata=pooltender_metadata if metadata is ... else metadata,
            )
            await db.start()
            started.push_async_callback(db.stop)
            checkouts.check_leaks(db.checkout_tracker)
            return db

        yield make


@_async_fixture
async def sqlite_database(make_sqlite_database: DatabaseFactory[Database]) -> Database:
    """A started in-memory SQLite database, new for each test, leak-checked."""
    return await make_sqlite_database()


@_async_fixture
async def postgres_database(
    make_postgres_database: DatabaseFactory[IsolatedDatabase],
) -> IsolatedDatabase:
    """A started PostgreSQL database whose every change is rolled back after the test."""
    return await make_postgres_database()
