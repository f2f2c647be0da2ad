"""FastAPI integration (``pooltender[fastapi]``): ``install(app)`` and the request
dependencies.

```python
from fastapi import FastAPI
from pooltender.fastapi import Session, install

app = FastAPI()
install(app)

@app.get("/users/{user_id}")
async def get_user(user_id: int, session: Session) -> dict: ...
```
"""

from .._extras import require

require("fastapi", "fastapi")

from ..dashboard import dashboard_router as dashboard_router  # noqa: E402
from .abandoned import finish_when_abandoned as finish_when_abandoned  # noqa: E402
from .dependencies import Connection as Connection  # noqa: E402
from .dependencies import ReadConnection as ReadConnection  # noqa: E402
from .dependencies import Session as Session  # noqa: E402
from .dependencies import SessionMaker as SessionMaker  # noqa: E402
from .dependencies import SyncSession as SyncSession  # noqa: E402
from .dependencies import connection_for as connection_for  # noqa: E402
from .dependencies import databases as databases  # noqa: E402
from .dependencies import read_connection_for as read_connection_for  # noqa: E402
from .dependencies import session_for as session_for  # noqa: E402
from .dependencies import sessionmaker_for as sessionmaker_for  # noqa: E402
from .dependencies import sync_session_for as sync_session_for  # noqa: E402
from .install import install as install  # noqa: E402

__all__ = [
    "Connection",
    "ReadConnection",
    "Session",
    "SessionMaker",
    "SyncSession",
    "connection_for",
    "dashboard_router",
    "databases",
    "finish_when_abandoned",
    "install",
    "read_connection_for",
    "session_for",
    "sessionmaker_for",
    "sync_session_for",
]
