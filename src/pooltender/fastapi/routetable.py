"""The app's routes in routing order, with their full path templates and databases.

FastAPI 0.16x keeps an included router nested: the matched route in
``scope["route"]`` carries its path *within its router* (``/{note_id}`` for
``/api/notes/{note_id}``). :func:`fastapi.routing.iter_route_contexts` yields every
route with its effective, full path; older FastAPI flattens included routers, so each
route's own path is already full. The table is built once per app, on first use, and
serves two readers: the monitor's route labels (:meth:`RouteTable.template`) and the
admission gate (:meth:`RouteTable.databases_for`).
"""

from __future__ import annotations

import re
import weakref
from collections.abc import Iterable
from typing import Any

from starlette.routing import BaseRoute, Match, Route, compile_path

from .asgi import Scope

__all__ = ["DATABASE_ATTRIBUTE", "RouteTable", "databases_of", "route_table"]

DATABASE_ATTRIBUTE = "pooltender_database"
"""Set on each request dependency: the name of the database it takes a connection of."""


def databases_of(route: Any) -> frozenset[str]:
    """The databases whose pooltender dependencies ``route`` (or its dependencies) uses."""
    names: set[str] = set()
    dependant = getattr(route, "dependant", None)
    stack = [dependant] if dependant is not None else []
    while stack:
        current = stack.pop()
        name = getattr(current.call, DATABASE_ATTRIBUTE, None)
        if isinstance(name, str):
            names.add(name)
        stack.extend(current.dependencies)
    return frozenset(names)


class _Entry:
    """One route: its full path template, pattern and methods, and its databases; or,
    for a route of another kind (a mount), the route to ask."""

    __slots__ = ("databases", "methods", "original", "path", "pattern", "route")

    def __init__(self, route: Any) -> None:
        self.original: Any = getattr(route, "original_route", route)
        path = getattr(route, "path", None)
        self.path: str | None = path if isinstance(path, str) else None
        self.route: Any = None
        self.pattern: re.Pattern[str] | None = None
        self.methods: frozenset[str] | None = None
        self.databases = databases_of(self.original)
        if isinstance(self.original, Route) and self.path is not None:
            self.pattern = compile_path(self.path)[0]
            methods = getattr(route, "methods", None)
            self.methods = frozenset(methods) if methods else None
        else:
            self.route = route

    def match(self, scope: Scope, path: str) -> Match:
        if self.pattern is None:
            return Match.NONE if self.route is None else self.route.matches(dict(scope))[0]
        if self.pattern.match(path) is None:
            return Match.NONE
        if self.methods is not None and scope["method"] not in self.methods:
            return Match.PARTIAL
        return Match.FULL


def _routes_in_order(routes: list[BaseRoute]) -> Iterable[Any]:
    try:
        from fastapi.routing import iter_route_contexts  # FastAPI >= 0.16x: nested routers
    except ImportError:  # older FastAPI flattens included routers itself
        return routes
    return iter_route_contexts(routes)


def route_path(scope: Scope) -> str:
    """The request's path below its app's ``root_path``."""
    path: str = scope["path"]
    root = scope.get("root_path", "")
    if root and path.startswith(root) and (len(path) == len(root) or path[len(root)] == "/"):
        return path[len(root) :]
    return path


class RouteTable:
    """See the module docstring."""

    def __init__(self, routes: list[BaseRoute]) -> None:
        self.entries = [_Entry(route) for route in _routes_in_order(routes)]
        self._by_route: dict[int, list[_Entry]] = {}
        for entry in self.entries:
            self._by_route.setdefault(id(entry.original), []).append(entry)

    def template(self, scope: Scope) -> str | None:
        """The full path template of the route that matched this request, once routed."""
        route = scope.get("route")
        if route is None:
            return None
        candidates = self._by_route.get(id(route), ())
        if len(candidates) == 1 and candidates[0].path is not None:
            return candidates[0].path
        path = route_path(scope)
        for entry in candidates:  # one router included under several prefixes
            if entry.pattern is not None and entry.pattern.match(path) and entry.path:
                return entry.path
        own = getattr(route, "path", None)  # a route outside the table (a mounted app's)
        return f"{scope.get('root_path', '')}{own}" if isinstance(own, str) else None

    def databases_for(self, scope: Scope) -> frozenset[str] | None:
        """The databases of the first route that fully matches, in the router's order;
        ``None`` when the table cannot place the request."""
        path = route_path(scope)
        for entry in self.entries:
            if entry.match(scope, path) is Match.FULL:
                return entry.databases
        return None


_tables: weakref.WeakKeyDictionary[Any, tuple[int, RouteTable]] = weakref.WeakKeyDictionary()


def route_table(app: Any) -> RouteTable:
    """The route table of ``app`` (a FastAPI or Starlette app), rebuilt when its routes
    change (routes added after the first request)."""
    routes = getattr(getattr(app, "router", None), "routes", [])
    cached = _tables.get(app)
    if cached is not None and cached[0] == len(routes):
        return cached[1]
    table = RouteTable(routes)
    _tables[app] = (len(routes), table)
    return table
