"""Abandoned requests: when the client goes away, the request's work is cancelled.

A client that disconnects (a timeout, a closed tab, a load balancer giving up) does not
stop an ASGI app: the route runs to its end and holds its database connection while it
does, keeping capacity from the clients still waiting. :class:`CancelOnDisconnect` (a
pure ASGI middleware that ``install(app)`` adds) is the only reader of the request's
``receive`` channel: it hands the body on to the app unchanged, and when the server
reports ``http.disconnect`` before the response has been sent in full, it cancels the
request's cancel scope. The route's pending statement is then cancelled on the server
(asyncpg sends a cancel request when its query is cancelled; SQLAlchemy discards the
connection, which the pool replaces), the transaction rolls back, and the connection's
slot is free a moment later.

A route whose work must finish even when nobody waits for the answer (a write that
has to reach the database once started) opts out with :func:`finish_when_abandoned`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

import anyio

from .asgi import ASGIApp, Message, Receive, Scope, Send

__all__ = ["CancelOnDisconnect", "finish_when_abandoned"]

F = TypeVar("F", bound=Callable[..., Any])

FINISH_ATTRIBUTE = "pooltender_finish_when_abandoned"


def finish_when_abandoned(endpoint: F) -> F:
    """Mark a route to run to its end even when its client disconnects.

    ``@app.post("/orders")`` above, ``@finish_when_abandoned`` below (on the function).
    """
    setattr(endpoint, FINISH_ATTRIBUTE, True)
    return endpoint


class CancelOnDisconnect:
    """Cancel an HTTP request's work when its client disconnects before the response
    is complete (see the module docstring)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        messages: asyncio.Queue[Message] = asyncio.Queue()
        done = gone = stopped = False

        with anyio.CancelScope() as cancel_scope:

            async def watch() -> None:
                nonlocal gone, stopped
                complete = False
                while True:
                    try:
                        message = await receive()
                    except Exception:  # the server's channel broke: as good as gone
                        message = {"type": "http.disconnect"}
                    kind = message["type"]
                    if kind == "http.request" and complete:
                        # More body after the last part: not a server that reports a
                        # disconnect this way (a test harness). Let the app read on.
                        stopped = True
                        messages.put_nowait(message)
                        return
                    messages.put_nowait(message)
                    if kind == "http.request" and not message.get("more_body"):
                        complete = True
                    if kind == "http.disconnect":
                        gone = True
                        endpoint = scope.get("endpoint")
                        if not done and not getattr(endpoint, FINISH_ATTRIBUTE, False):
                            cancel_scope.cancel()
                        return

            async def send_and_note(message: Message) -> None:
                nonlocal done
                if message["type"] == "http.response.body" and not message.get("more_body"):
                    done = True
                await send(message)

            async def receive_queued() -> Message:
                if not messages.empty() or not (gone or stopped):
                    return await messages.get()
                if stopped:
                    return await receive()
                return {"type": "http.disconnect"}

            watcher = asyncio.ensure_future(watch())
            try:
                await self.app(scope, receive_queued, send_and_note)
            finally:
                done = True
                watcher.cancel()
