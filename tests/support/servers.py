"""A real uvicorn server for an app, in a background thread, on an ephemeral port.

The same helper the CLI uses to serve the demo in-process.
"""

from __future__ import annotations

from pooltender.cli._server import serve_in_thread as serve

__all__ = ["serve"]
