"""The request a checkout belongs to: a context variable set by a web integration.

A web integration (the FastAPI one: :mod:`pooltender.fastapi.middleware`) sets a
:class:`RequestContext` for each request, with a function that names the request's
route template once routing has run; the monitor reads it at checkout. Nothing here
knows of a web framework: a raw path never becomes a label because only the
integration's ``route`` function says what the template is.
"""

from __future__ import annotations

import asyncio
import contextvars
import weakref
from collections.abc import Callable
from typing import Any

__all__ = [
    "NO_REQUEST",
    "UNMATCHED",
    "RequestContext",
    "current_request",
    "request_of_task",
    "route_of",
]

NO_REQUEST = "(no request)"
"""The route of a checkout made outside any request (startup, scripts, tasks)."""

UNMATCHED = "(unmatched)"
"""The template of a request no route matched (yet)."""

current_request: contextvars.ContextVar[RequestContext | None] = contextvars.ContextVar(
    "pooltender_request", default=None
)


class RequestContext:
    """One request: its route (resolved lazily), its task, and when its response started.

    ``template``: returns the matched route's path template, or ``None`` while routing
    has not run. ``advice``: what to do about a connection held after the response,
    in the framework's terms (the watchdog's warning quotes it).
    """

    __slots__ = ("_route", "_template", "advice", "method", "response_started", "task")

    def __init__(
        self,
        method: str,
        template: Callable[[], str | None],
        *,
        advice: str = "close the session before returning the response",
    ) -> None:
        self.method = method
        self._template = template
        self.advice = advice
        self.response_started: float | None = None
        self._route: str | None = None
        try:
            self.task: asyncio.Task[Any] | None = asyncio.current_task()
        except RuntimeError:
            self.task = None
        if self.task is not None:
            _by_task[self.task] = self

    @property
    def route(self) -> str:
        """``GET /users/{user_id}``: the method and the matched route's path template."""
        if self._route is not None:
            return self._route
        template = self._template()
        if template is None:
            return f"{self.method} {UNMATCHED}"  # not cached: routing may not have run yet
        self._route = f"{self.method} {template}"
        return self._route


# The request each task serves (the task that set it), for the watchdog, which names
# the route of the task a blocked loop is running from its own thread.
_by_task: weakref.WeakKeyDictionary[asyncio.Task[Any], RequestContext] = weakref.WeakKeyDictionary()


def request_of_task(task: asyncio.Task[Any]) -> RequestContext | None:
    """The request ``task`` began serving, if a web integration set one in it."""
    try:
        return _by_task.get(task)
    except RuntimeError:  # changed size while read from another thread: not named this time
        return None


def route_of(context: RequestContext | None) -> str:
    return NO_REQUEST if context is None else context.route
