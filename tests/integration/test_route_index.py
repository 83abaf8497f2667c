"""The route index hands FastAPI only the routers a path can belong to, and changes nothing it answers."""

from __future__ import annotations

import re

import pytest
from fastapi import APIRouter, FastAPI, Request
from fastapi.testclient import TestClient

from cloudlet.app import create_app
from cloudlet.surfaces import route_index
from cloudlet.surfaces.deps import Runtime
from cloudlet.surfaces.route_index import RouteIndex


def _sample(path_format: str) -> str:
    """A concrete path the format matches: each parameter filled in."""
    return re.sub(r"\{[^}:]+(:path)?\}", lambda m: "a/b" if m.group(1) else "7", path_format)


@pytest.mark.engines("sqlite")
def test_every_route_of_the_app_is_among_the_routers_tried_for_its_paths(runtime: Runtime) -> None:
    app = create_app(runtime=runtime)
    index = app.router.middleware_stack
    assert isinstance(index, RouteIndex)
    index._index()
    entries = list(app.router.routes)
    tried_for_some_path = 0
    for entry in entries:
        for path_format in route_index._path_formats(entry):
            assert path_format is not None
            narrowed = index.router_for(_sample(path_format)).routes
            assert entry in narrowed, path_format
            # in the app's own order, and fewer than all of them
            assert narrowed == [e for e in entries if e in narrowed]
            tried_for_some_path += len(narrowed) < len(entries)
    assert tried_for_some_path > 100
    assert len(index.router_for("/api/me").routes) < len(entries) / 4


def _small_app() -> FastAPI:
    app = FastAPI()
    items, things = APIRouter(), APIRouter()

    @items.get("/items/special")
    async def special() -> dict[str, str]:
        return {"route": "special"}

    @items.get("/items/{item_id}")
    async def item(item_id: str) -> dict[str, str]:
        return {"route": "item", "id": item_id}

    @things.post("/things/")
    async def thing(request: Request) -> dict[str, str]:
        return {"route": "thing", "special": str(request.url_for("special"))}

    app.include_router(items)
    app.include_router(things)
    route_index.install(app)
    return app


def test_the_index_answers_as_fastapi_does_without_it() -> None:
    plain = _small_app()
    plain.router.middleware_stack = plain.router.app  # FastAPI's own matching over every route
    with TestClient(_small_app()) as indexed, TestClient(plain) as unindexed:
        for method, path in [("GET", "/items/special"), ("GET", "/items/42"), ("POST", "/items/42"),
                             ("POST", "/things/"), ("GET", "/things/"), ("POST", "/things"), ("GET", "/nothing"),
                             ("GET", "/"), ("GET", "/items")]:
            one = indexed.request(method, path, follow_redirects=False)
            other = unindexed.request(method, path, follow_redirects=False)
            assert (one.status_code, one.text, one.headers.get("location")) == (
                other.status_code, other.text, other.headers.get("location")), (method, path)
        assert indexed.get("/items/special").json() == {"route": "special"}  # the first match still wins
        assert indexed.post("/items/42").status_code == 405
        assert indexed.post("/things/").json()["special"] == "http://testserver/items/special"  # another router's


def test_a_route_added_after_install_is_found() -> None:
    app = _small_app()

    @app.get("/late")
    async def late() -> dict[str, str]:
        return {"route": "late"}

    with TestClient(app) as client:
        assert client.get("/late").json() == {"route": "late"}
        assert client.get("/items/1").json()["route"] == "item"
