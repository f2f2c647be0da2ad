"""``RequestContextMiddleware``: tells the pool monitor which request a checkout serves.

A pure ASGI middleware (no response buffering): it sets a
:class:`~pooltender.monitor.RequestContext` for each HTTP request, whose route is the
full path template of the matched route (:mod:`.routetable`), and notes when the
response starts, so the monitor can name each checkout's route and spot connections
still held after the response started.
"""

from __future__ import annotations

import functools
import time

from ..monitor.context import RequestContext, current_request
from .asgi import ASGIApp, Message, Receive, Scope, Send
from .routetable import route_table

__all__ = ["RequestContextMiddleware"]


@functools.cache
def advice_after_response() -> str:
    """What to do about a session held after the response started, for this FastAPI."""
    from fastapi import __version__ as version

    return (
        f"FastAPI {version}: a dependency with yield exits after the response unless "
        'declared Depends(..., scope="function") (pooltender\'s Session does this); read '
        "the rows before returning, and in a generator or background task open its own "
        "session with `async with databases(app)[name].session()`"
    )


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        context = RequestContext(
            scope.get("method", "HTTP"),
            lambda: route_table(scope.get("app")).template(scope),
            advice=advice_after_response(),
        )
        token = current_request.set(context)

        async def send_and_note(message: Message) -> None:
            if message["type"] == "http.response.start" and context.response_started is None:
                context.response_started = time.perf_counter()
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            current_request.reset(token)
