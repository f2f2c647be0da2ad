"""Abandoned requests: when the client goes away, the request's work is cancelled.

A client that disconnects (a timeout, a closed tab, a load balancer giving up) does not
stop an ASGI app: the route runs to its end and holds its database connection while it
does, keeping capacity from the clients still waiting. :class:`CancelOnDisconnect` (a
pure ASGI middleware that ``install(app)`` adds) is the only reader of the request's
``receive`` channel once the app has the request's body (at once for a request without
one): it hands the body on to the app unchanged, and when the server reports
``http.disconnect`` before the response has been sent in full, it cancels the request's
task. The route's pending statement is then cancelled on the server
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
        task = asyncio.current_task()
        if scope["type"] != "http" or task is None:
            await self.app(scope, receive, send)
            return
        loop = asyncio.get_running_loop()
        gone: asyncio.Future[Message] = loop.create_future()
        pending: list[Message] = []  # read by the watcher, not yet by the app
        done = cancelled = stopped = False
        watcher: asyncio.Task[None] | None = None

        async def watch() -> None:
            nonlocal cancelled, stopped
            while True:
                try:
                    message = await receive()
                except Exception:  # the server's channel broke: as good as gone
                    message = {"type": "http.disconnect"}
                if message["type"] == "http.disconnect":
                    gone.set_result(message)
                    endpoint = scope.get("endpoint")
                    if not done and not getattr(endpoint, FINISH_ATTRIBUTE, False):
                        cancelled = True
                        task.cancel()
                    return
                pending.append(message)
                if len(pending) > 1:
                    # More body after the last part: not a server that waits for the
                    # disconnect (a test harness). Let the app read on by itself.
                    stopped = True
                    return

        async def receive_for_app() -> Message:
            nonlocal watcher
            if watcher is None or stopped:
                if pending:
                    return pending.pop(0)
                message = await receive()
                if (
                    watcher is None
                    and message["type"] == "http.request"
                    and not message.get("more_body")
                ):  # the body read: watch from now on
                    watcher = loop.create_task(watch())
                return message
            if pending:
                return pending.pop(0)
            return await asyncio.shield(gone)

        async def send_and_note(message: Message) -> None:
            nonlocal done
            if message["type"] == "http.response.body" and not message.get("more_body"):
                done = True
            await send(message)

        if not _has_body(scope):
            watcher = loop.create_task(watch())  # its one empty body part goes to pending
        try:
            await self.app(scope, receive_for_app, send_and_note)
        except asyncio.CancelledError:
            if cancelled and task.uncancel() == 0:
                return  # our own cancellation: the client has gone, nothing to answer
            raise
        finally:
            done = True
            if watcher is not None and not watcher.done():
                # A server answers the pending receive() once the response is complete
                # (uvicorn: http.disconnect), which ends the watcher without the cost
                # of a cancellation; one turn of the loop later, cancel it if not.
                loop.call_soon(watcher.cancel)


def _has_body(scope: Scope) -> bool:
    for name, value in scope.get("headers", ()):
        if (name == b"content-length" and value != b"0") or name == b"transfer-encoding":
            return True
    return False
