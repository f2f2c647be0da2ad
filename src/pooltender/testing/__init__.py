"""Testing helpers: isolated databases, app overrides, leak checks, pool figures.

Installing pooltender registers its pytest plugin (fixtures ``sqlite_database``,
``postgres_database``, ``pooltender_metadata``; a leak check after every test).
See ``docs/testing.md``. :func:`async_client` and :func:`override_databases` need the
FastAPI integration (``pooltender[fastapi]``) and httpx; the rest needs the core only.
"""

from typing import Any

from .checkouts import CheckoutTracker as CheckoutTracker
from .checkouts import Held as Held
from .checkouts import PoolUsage as PoolUsage
from .checkouts import checkout_site as checkout_site
from .checkouts import pool_usage as pool_usage
from .checkouts import tracker_for as tracker_for
from .isolation import IsolatedDatabase as IsolatedDatabase

__all__ = [
    "CheckoutTracker",
    "Held",
    "IsolatedDatabase",
    "PoolUsage",
    "async_client",
    "checkout_site",
    "override_databases",
    "pool_usage",
    "tracker_for",
]

_WEB = ("async_client", "override_databases")


def __getattr__(name: str) -> Any:
    # The web helpers import FastAPI and httpx: only when asked for, so that the pytest
    # plugin (loaded in every test run where pooltender is installed) needs the core only.
    if name in _WEB:
        from . import apps

        return getattr(apps, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
