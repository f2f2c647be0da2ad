"""The live pool dashboard: ``GET /debug/pool`` and its assets, all inside the package.

```python
from fastapi import Depends
from pooltender.dashboard import dashboard_router

app.include_router(dashboard_router(guard=my_debug_guard), prefix="/debug")
```

The page reads the snapshot at ``pool-stats`` relative to itself (so under the
``/debug`` prefix: ``/debug/pool-stats``) once a second. Assets are served
from ``pooltender/dashboard/static`` with ``importlib.resources``; the page loads
nothing from outside (its Content-Security-Policy forbids it).
"""

from .router import dashboard_router as dashboard_router

__all__ = ["dashboard_router"]
