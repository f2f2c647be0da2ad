"""FastAPI integration: ``install(app)`` and the request dependencies.

```python
from fastapi import FastAPI
from pooltender.fastapi import Session, install

app = FastAPI()
install(app)

@app.get("/users/{user_id}")
async def get_user(user_id: int, session: Session) -> dict: ...
```
"""

from ..dashboard import dashboard_router as dashboard_router
from .debug import DebugAccess as DebugAccess
from .dependencies import (
    Connection as Connection,
)
from .dependencies import (
    ReadConnection as ReadConnection,
)
from .dependencies import (
    Session as Session,
)
from .dependencies import (
    SyncSession as SyncSession,
)
from .dependencies import (
    connection_for as connection_for,
)
from .dependencies import (
    databases as databases,
)
from .dependencies import (
    read_connection_for as read_connection_for,
)
from .dependencies import (
    session_for as session_for,
)
from .dependencies import (
    sync_session_for as sync_session_for,
)
from .install import database_unavailable_handler as database_unavailable_handler
from .install import install as install
from .middleware import RequestContextMiddleware as RequestContextMiddleware

__all__ = [
    "Connection",
    "DebugAccess",
    "ReadConnection",
    "RequestContextMiddleware",
    "Session",
    "SyncSession",
    "connection_for",
    "dashboard_router",
    "database_unavailable_handler",
    "databases",
    "install",
    "read_connection_for",
    "session_for",
    "sync_session_for",
]
