"""pooltender: correct, visible and right-sized database pools for FastAPI services.

The core (this package's top level) needs SQLAlchemy and pydantic only. The FastAPI
integration is :mod:`pooltender.fastapi` (``pooltender[fastapi]``), Prometheus metrics
:mod:`pooltender.metrics` (``pooltender[metrics]``), the command ``pooltender[cli]``.
"""

from .database import Database as Database
from .database import DatabaseState as DatabaseState
from .databases import Databases as Databases
from .engine import build_engine as build_engine
from .errors import CompatibilityError as CompatibilityError
from .errors import ConfigurationError as ConfigurationError
from .errors import DatabaseUnavailable as DatabaseUnavailable
from .errors import DatabaseUnreachable as DatabaseUnreachable
from .errors import DriverNotInstalled as DriverNotInstalled
from .errors import FailoverDetected as FailoverDetected
from .errors import LifecycleError as LifecycleError
from .errors import PoolOverloaded as PoolOverloaded
from .errors import PooltenderError as PooltenderError
from .errors import PoolTimeout as PoolTimeout
from .errors import ReadOnlyError as ReadOnlyError
from .errors import StartupError as StartupError
from .errors import StatementTimeout as StatementTimeout
from .fork import dispose_after_fork as dispose_after_fork
from .migrations import migration_engine as migration_engine
from .readiness import readiness as readiness
from .secrets import redact_url as redact_url
from .settings import DatabaseSettings as DatabaseSettings
from .settings import PooltenderSettings as PooltenderSettings
from .settings import load_database_settings as load_database_settings
from .settings import load_pooltender_settings as load_pooltender_settings
from .stats import PoolStats as PoolStats
from .stats import Snapshot as Snapshot

__version__ = "0.1.0"

__all__ = [
    "CompatibilityError",
    "ConfigurationError",
    "Database",
    "DatabaseSettings",
    "DatabaseState",
    "DatabaseUnavailable",
    "DatabaseUnreachable",
    "Databases",
    "DriverNotInstalled",
    "FailoverDetected",
    "LifecycleError",
    "PoolOverloaded",
    "PoolStats",
    "PoolTimeout",
    "PooltenderError",
    "PooltenderSettings",
    "ReadOnlyError",
    "Snapshot",
    "StartupError",
    "StatementTimeout",
    "__version__",
    "build_engine",
    "dispose_after_fork",
    "load_database_settings",
    "load_pooltender_settings",
    "migration_engine",
    "readiness",
    "redact_url",
]
