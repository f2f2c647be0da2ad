"""What the server says about its own connection limit: for the fleet budget.

Every instance and worker of a service exports its pool's ``max`` and the server's
usable slots (``max_connections`` less the slots reserved for superusers and
replication); summed over the fleet they say whether the deployment can outgrow the
server (the ``PooltenderFleetBudget`` alert, ``docs/fleet.md``). Read once at start,
with the connection ``start()`` verifies anyway.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.engine import Connection

__all__ = ["usable_slots"]

_QUERIES = {
    "postgresql": text(
        "SELECT current_setting('max_connections')::int"
        " - current_setting('superuser_reserved_connections')::int"
        " - coalesce(current_setting('reserved_connections', true), '0')::int"
    ),
    "mysql": text("SELECT @@max_connections"),
    "mariadb": text("SELECT @@max_connections"),
}


def usable_slots(connection: Connection) -> int | None:
    """The server's usable connection slots; ``None`` for a server without a limit
    (SQLite)."""
    query = _QUERIES.get(connection.dialect.name)
    if query is None:
        return None
    value = connection.execute(query).scalar()
    return None if value is None else max(0, int(value))
