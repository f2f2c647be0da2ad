"""Testing helpers: isolated databases, app overrides, leak checks, pool figures.

Installing pooltender registers its pytest plugin (fixtures ``sqlite_database``,
``postgres_database``, ``pooltender_metadata``; a leak check after every test).
See ``docs/testing.md``.
"""

from .apps import async_client as async_client
from .apps import override_databases as override_databases
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
