"""Errors raised by pooltender.

Every error pooltender raises derives from :class:`PooltenderError`::

    PooltenderError
    ├── ConfigurationError          bad settings: names the variable and the reason (ValueError)
    │   └── DriverNotInstalled      the URL names a driver whose package is missing
    ├── LifecycleError              a database used before start(), or restarted after stop()
    ├── StartupError                start() could not reach the database (names database and host)
    ├── CompatibilityError          an installed SQLAlchemy or driver lacks a name pooltender needs
    ├── ReadOnlyError               a session of a read-only database was asked to write
    └── DatabaseUnavailable         the pool cannot serve now; HTTP integrations answer 503
        ├── PoolOverloaded          the wait queue is full (DATABASE_MAX_WAITING): refused at once
        ├── PoolTimeout             no connection within DATABASE_POOL_TIMEOUT
        ├── DatabaseUnreachable     a new connection could not be opened, or one was lost
        ├── StatementTimeout        the server cancelled a statement at its statement timeout
        └── FailoverDetected        the server turned out read-only: a demoted primary

``PoolOverloaded`` and ``PoolTimeout`` are also :class:`sqlalchemy.exc.TimeoutError`,
so ``except sqlalchemy.exc.TimeoutError`` clauses written for a plain SQLAlchemy pool
keep catching them. No message ever contains a URL's password.
"""

from __future__ import annotations

import sys

import sqlalchemy.exc

__all__ = [
    "CompatibilityError",
    "ConfigurationError",
    "DatabaseUnavailable",
    "DatabaseUnreachable",
    "DriverNotInstalled",
    "FailoverDetected",
    "LifecycleError",
    "PoolOverloaded",
    "PoolTimeout",
    "PooltenderError",
    "ReadOnlyError",
    "StartupError",
    "StatementTimeout",
]


class PooltenderError(Exception):
    """Base class of every error pooltender raises."""


class ConfigurationError(PooltenderError, ValueError):
    """A setting is missing or invalid.

    ``variable`` is the environment variable (or keyword) at fault.
    """

    def __init__(self, variable: str, reason: str) -> None:
        self.variable = variable
        self.reason = reason
        super().__init__(f"{variable}: {reason}")


class DriverNotInstalled(ConfigurationError):
    """The URL names a database driver whose package is not installed."""

    def __init__(self, variable: str, driver: str, package: str) -> None:
        self.driver = driver
        self.package = package
        super().__init__(
            variable,
            f"the driver {driver!r} is not installed; install it with: pip install {package}",
        )


class LifecycleError(PooltenderError, RuntimeError):
    """A database was used outside its started life (before ``start()`` or after ``stop()``)."""


class StartupError(PooltenderError):
    """``start()`` could not reach the database after its bounded retries."""

    def __init__(self, database: str, host: str, reason: str) -> None:
        self.database = database
        self.host = host
        self.reason = reason
        super().__init__(f"database {database!r} at {host} is not reachable: {reason}")


class CompatibilityError(PooltenderError, RuntimeError):
    """An installed SQLAlchemy, driver or Python lacks a name pooltender relies on.

    Raised at start (see :mod:`pooltender.compat`), never in the middle of a request.
    """

    def __init__(self, name: str, distribution: str) -> None:
        from importlib import metadata

        self.name = name
        self.distribution = distribution
        if distribution == "Python":
            installed = sys.version.split()[0]
        else:
            try:
                installed = metadata.version(distribution)
            except metadata.PackageNotFoundError:
                installed = "(not installed)"
        self.installed = installed
        super().__init__(
            f"pooltender relies on {name}, which {distribution} {installed} does not have: "
            "install a version pooltender supports (README, 'Supported versions')"
        )


class ReadOnlyError(PooltenderError):
    """A session of a read-only database (``DATABASE_<NAME>_READ_ONLY``) tried to write."""

    def __init__(self, database: str, variable: str, what: str) -> None:
        self.database = database
        super().__init__(
            f"database {database!r} is read-only ({variable}=true): refusing to flush {what};"
            " write through another database's session"
        )


class DatabaseUnavailable(PooltenderError):
    """The pool cannot serve a connection now. HTTP integrations answer 503.

    ``retry_after`` is the number of seconds a client should wait before retrying.
    The message (``str()``) is for logs and authorised debug output: it may name the
    host, the port and the driver's own words. :attr:`public_message` is what an
    anonymous client is told: the database's name and the reason, nothing else.
    """

    reason_code = "unavailable"
    public_reason = "is unavailable"

    def __init__(self, database: str, message: str, *, retry_after: int = 1) -> None:
        self.database = database
        self.retry_after = retry_after
        self.message = message
        super().__init__(message)

    def __str__(self) -> str:
        return self.message

    @property
    def public_message(self) -> str:
        """``database 'primary' is unreachable``: no host, port or driver text."""
        return f"database {self.database!r} {self.public_reason}"


class PoolOverloaded(DatabaseUnavailable, sqlalchemy.exc.TimeoutError):
    """Refused at once: all connections are in use and the wait queue is full."""

    reason_code = "overloaded"
    public_reason = "is overloaded: every connection is in use and the wait queue is full"


class PoolTimeout(DatabaseUnavailable, sqlalchemy.exc.TimeoutError):
    """No connection became free within the pool timeout."""

    reason_code = "timeout"
    public_reason = "had no free connection within the pool timeout"


class DatabaseUnreachable(DatabaseUnavailable):
    """A new connection to the database could not be opened."""

    reason_code = "unreachable"
    public_reason = "is unreachable"


class StatementTimeout(DatabaseUnavailable):
    """The server cancelled a statement that ran past its statement timeout
    (``DATABASE_STATEMENT_TIMEOUT``, or one set on the server): typically a lock held
    by a stuck transaction, or a database too busy to answer in time. The request's
    transaction is rolled back."""

    reason_code = "statement_timeout"
    public_reason = "cancelled a statement at its statement timeout"


class FailoverDetected(DatabaseUnavailable):
    """The server of a database that is not declared read-only refused a write as
    read-only (PostgreSQL SQLSTATE 25006, MariaDB/MySQL error 1290), or reported itself
    read-only or in recovery when a connection was opened: a primary demoted by a
    failover. The connection is replaced, and so is every pooled connection to that
    server (:mod:`pooltender.failover`)."""

    reason_code = "failover"
    public_reason = "is read-only (a failover): its connections are being replaced"
