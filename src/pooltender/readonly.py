"""Read-only databases: a replica or an analytics database that must never be written.

``DATABASE_<NAME>_READ_ONLY=true`` makes database ``<NAME>`` refuse writes twice:

- in the session: an ORM flush with pending inserts, updates or deletes raises
  :class:`ReadOnlyError` before any SQL is sent;
- on the server: every transaction is ``READ ONLY`` (PostgreSQL, MySQL/MariaDB) or the
  connection is ``query_only`` (SQLite), so Core and raw SQL writes fail too.

Routes declare that they only read by asking for that database's session:
``session: Annotated[AsyncSession, session_for("replica")]``.
"""

from __future__ import annotations

import functools
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session

from .errors import ReadOnlyError
from .settings import DatabaseSettings

__all__ = ["read_only_session_class"]


@functools.cache
def _session_class(database: str, variable: str) -> type[Session]:
    class ReadOnlySession(Session):
        """A session of a read-only database: flushing pending writes raises."""

    def refuse_writes(session: Session, flush_context: Any, instances: Any) -> None:
        counts = {
            "new": len(session.new),
            "changed": len(session.dirty),
            "deleted": len(session.deleted),
        }
        if any(counts.values()):
            what = ", ".join(f"{n} {kind}" for kind, n in counts.items() if n) + " object(s)"
            raise ReadOnlyError(database, variable, what)

    event.listen(ReadOnlySession, "before_flush", refuse_writes)
    ReadOnlySession.__name__ = ReadOnlySession.__qualname__ = f"ReadOnlySession_{database}"
    return ReadOnlySession


def read_only_session_class(settings: DatabaseSettings) -> type[Session]:
    """The :class:`Session` subclass of read-only database ``settings.name``."""
    return _session_class(settings.name, settings.variable("read_only"))
