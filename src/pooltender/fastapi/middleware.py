"""``RequestContextMiddleware``: tells the pool monitor which request a checkout serves.

A pure ASGI middleware (no response buffering): it sets a
:class:`~pooltender.monitor.RequestContext` for each HTTP request and notes when the
response starts, so the monitor can name the route template of each checkout and
spot sessions still held after the response started.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from ..monitor.context import RequestContext, current_request

__all__ = ["RequestContextMiddleware"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        context = RequestContext(scope)
        token = current_request.set(context)

        async def send_and_note(message: Message) -> None:
            if message["type"] == "http.response.start" and context.response_started is None:
                context.response_started = time.perf_counter()
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            current_request.reset(token)
