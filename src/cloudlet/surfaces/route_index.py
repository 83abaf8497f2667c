"""Which of the app's routers a request path can belong to, so FastAPI tries only those.

FastAPI (0.16x) matches a request by asking every included router in turn, and each of them tries
every one of its routes with some bookkeeping: about 2 µs a route, so a trivial endpoint served 46 µs
a request when its router came first and 537 µs when it came last of the 230 routes (measured
in-process). A route's path can only match a request whose path starts with the route's literal
beginning (what comes before its first `{parameter}`), so the index keeps, for each path seen, the
routers with such a beginning, in their order, and lets FastAPI's own matching run over those alone.
A path that no router's beginning fits goes to the whole router, for FastAPI's own 404 or redirect.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from functools import lru_cache

from fastapi import FastAPI
from fastapi.routing import APIRouter
from starlette.routing import BaseRoute, Mount
from starlette.types import Receive, Scope, Send

PATHS_REMEMBERED = 4096  # distinct request paths whose routers are remembered (ids make paths many)


def _path_formats(route: BaseRoute, prefix: str = "") -> Iterator[str | None]:
    """The full path of each route an entry of the top-level list stands for; None when unknown.

    An included router's paths are its include prefix and its own routes' paths, read from the router as
    declared: asking FastAPI for its effective routes would build every route's dependencies (pydantic
    adapters for each parameter, about 0.15 s for the whole app), which FastAPI otherwise does lazily, for
    the routers a request tries. Every new app (each test's) paid that at its first request.
    """
    original = getattr(route, "original_router", None)  # an included router
    context = getattr(route, "include_context", None)
    if original is not None and context is not None:
        for child in original.routes:
            yield from _path_formats(child, prefix + context.prefix)
    elif isinstance(route, Mount):
        yield prefix + route.path
    else:
        path = getattr(route, "path", None)
        yield prefix + path if isinstance(path, str) else None


def literal_beginnings(route: BaseRoute) -> tuple[str, ...] | None:
    """What every path this entry can match starts with (one per route, without a trailing slash, so a
    path that differs by its trailing slash still finds it); None when some route's path is unknown."""
    beginnings = set()
    for path_format in _path_formats(route):
        if path_format is None:
            return None
        beginnings.add(path_format.split("{", 1)[0].rstrip("/"))
    return tuple(sorted(beginnings))


class RouteIndex:
    """The router's HTTP entry point: FastAPI's matching over the routers a path can belong to."""

    def __init__(self, router: APIRouter) -> None:
        self.router = router
        self._indexed_count = -1
        self._entries: list[tuple[tuple[str, ...] | None, BaseRoute]] = []
        self._narrowed: dict[tuple[int, ...], APIRouter] = {}
        self.router_for = lru_cache(maxsize=PATHS_REMEMBERED)(self._router_for)

    def _index(self) -> None:
        self._entries = [(literal_beginnings(route), route) for route in self.router.routes]
        self._narrowed.clear()
        self.router_for.cache_clear()
        self._indexed_count = len(self.router.routes)

    def _router_for(self, path: str) -> APIRouter:
        picked = tuple(i for i, (beginnings, _) in enumerate(self._entries)
                       if beginnings is None or any(path.startswith(b) for b in beginnings))
        if not picked:
            return self.router
        narrowed = self._narrowed.get(picked)
        if narrowed is None:
            narrowed = copy.copy(self.router)  # the same router but for its list of routes
            narrowed.routes = [self._entries[i][1] for i in picked]
            self._narrowed[picked] = narrowed
        return narrowed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.router.app(scope, receive, send)
            return
        if len(self.router.routes) != self._indexed_count:  # a route added since (tests add some)
            self._index()
        scope.setdefault("router", self.router)  # url_for names any route, not only the narrowed ones
        path, root = scope["path"], scope.get("root_path", "")
        await self.router_for(path[len(root):] if root and path.startswith(root) else path).app(scope, receive, send)


def install(app: FastAPI) -> RouteIndex:
    """Put the index in front of the app's routes; call once every router is included."""
    router = app.router
    if router.middleware_stack != router.app:
        raise RuntimeError("the router has middleware of its own; the index would bypass it")
    index = RouteIndex(router)
    router.middleware_stack = index
    return index
