"""The OpenAPI document describes every surface, each operation under its surface's tag, and /docs serves it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from cloudlet.app import create_app
from cloudlet.surfaces.cyberpanel import errors as cyberpanel_errors
from cloudlet.surfaces.elxega import errors as elxega_errors
from cloudlet.surfaces.mount import TAGS, error_renderer
from cloudlet.surfaces.primary import errors as primary_errors
from cloudlet.surfaces.shardlyn import errors as shardlyn_errors
from cloudlet.surfaces.wayscloud import errors as wayscloud_errors
from tests.conftest import make_settings

SURFACES = {"primary", "cyberpanel", "shardlyn", "wayscloud", "elxega"}
# The app picks a path's error format by the surface that owns it; the tag must name the same surface.
OWNER_BY_RENDERER = {
    primary_errors.render: "primary",
    cyberpanel_errors.render: "cyberpanel",
    shardlyn_errors.render: "shardlyn",
    wayscloud_errors.render: "wayscloud",
    elxega_errors.render: "elxega",
}
METHODS = {"get", "post", "put", "patch", "delete", "head", "options"}


def owner(path: str) -> str:
    """The surface that owns a path, by the same rule that picks its error format."""
    return OWNER_BY_RENDERER[error_renderer(path)]


@pytest.fixture
def app(tmp_path: Path) -> FastAPI:
    """The app as `cloudlet serve` builds it (the document needs no database)."""
    return create_app(make_settings(tmp_path, f"sqlite:///{tmp_path / 'openapi.db'}"))


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    """A client of that app."""
    with TestClient(app) as test_client:
        yield test_client


def operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """Every (method, path, operation) of the document."""
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method in METHODS:
                yield method.upper(), path, operation


def test_the_owner_rule_matches_the_documented_base_paths() -> None:
    assert owner("/api/me") == "primary"
    assert owner("/api/v1/test") == "cyberpanel"
    assert owner("/v1/vps/{vps_id}") == "wayscloud"
    assert owner("/v1/workloads") == "elxega"
    assert owner("/v1/deployments/{id}") == "elxega"
    assert owner("/v1/resources") == "elxega"
    assert owner("/v1/admin/audit-logs") == "shardlyn"
    assert owner("/health") == "shardlyn"


def test_the_document_builds_and_tags_every_operation_with_its_surface(client: TestClient) -> None:
    reply = client.get("/openapi.json")
    assert reply.status_code == 200
    document = reply.json()
    assert document["openapi"].startswith("3.")
    assert document["info"]["title"] == "Cloudlet"
    assert {t["name"] for t in document["tags"]} >= SURFACES
    assert all(t.get("description") for t in document["tags"] if t["name"] in SURFACES)

    found = list(operations(document))
    assert len(found) > 10
    wrong = []
    for method, path, operation in found:
        surface_tags = SURFACES.intersection(operation.get("tags", []))
        if surface_tags != {owner(path)}:
            wrong.append(f"{method} {path}: tags {operation.get('tags')}, owner {owner(path)}")
    assert wrong == [], "operations without exactly their own surface's tag:\n" + "\n".join(wrong)

    # generated clients name methods after operation ids: two alike would clash
    ids = [operation["operationId"] for _, _, operation in found]
    assert len(ids) == len(set(ids))
    # every operation says what it answers
    assert all(operation.get("responses") for _, _, operation in found)


def test_routes_hidden_from_the_document_are_tagged_too(app: FastAPI) -> None:
    wrong = [f"{sorted(route.methods)} {route.path}: {route.tags}" for route in app.routes
             if isinstance(route, APIRoute) and SURFACES.intersection(map(str, route.tags)) != {owner(route.path)}]
    assert wrong == []


def test_the_admin_audit_endpoints_are_documented(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    listing = paths["/v1/admin/audit-logs"]["get"]
    assert {p["name"] for p in listing["parameters"]} >= {
        "actor_user_id", "token_id", "method", "path", "status", "since", "until", "limit", "offset"}
    export = paths["/v1/admin/audit-logs/export"]["get"]
    assert "format" in {p["name"] for p in export["parameters"]}
    assert {"text/csv; charset=utf-8", "application/x-ndjson"} <= set(export["responses"]["200"]["content"])


def test_docs_page_serves_html_that_loads_the_document(client: TestClient) -> None:
    reply = client.get("/docs")
    assert reply.status_code == 200
    assert reply.headers["content-type"].startswith("text/html")
    assert "swagger-ui" in reply.text.lower()
    assert "/openapi.json" in reply.text
    # the page loads Swagger UI from this server, never from a CDN (installations may be offline)
    assert "cdn" not in reply.text.lower()
    script = client.get("/docs/static/swagger-ui-bundle.js")
    assert script.status_code == 200 and "SwaggerUIBundle" in script.text
    assert client.get("/docs/static/swagger-ui.css").status_code == 200
    assert client.get("/docs/oauth2-redirect").status_code == 200


def test_tag_descriptions_name_each_surfaces_base_path() -> None:
    described = {t["name"]: t["description"] for t in TAGS}
    assert "/api" in described["primary"]
    assert "/api/v1" in described["cyberpanel"]
    assert "/v1/vps" in described["wayscloud"]
    assert "/v1/workloads" in described["elxega"]
    assert "/v1" in described["shardlyn"]
