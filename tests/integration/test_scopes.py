"""The scope matrix: every route declares what it needs, and a credential without it is refused.

Generic over create_app().routes, so routes other work adds are held to the same rule.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fastapi.routing
import pytest
from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute, Route

from cloudlet.app import create_app
from cloudlet.config import Settings
from cloudlet.surfaces.deps import Runtime
from cloudlet.surfaces.public import PUBLIC_ENDPOINTS
from cloudlet.tokens.abilities import Ability, grants
from tests.conftest import Api
from tests.helpers import make_user, mint_token

BODY_METHODS = {"POST", "PUT", "PATCH"}
PARAM = re.compile(r"{([^}:]+)(:[^}]+)?}")


def _markers(dependant: Dependant) -> Iterator[object]:
    for sub in dependant.dependencies:
        marker = getattr(sub.call, "required_ability", None)
        if marker is not None:
            yield marker
        yield from _markers(sub)


def _app() -> FastAPI:
    # Only the routing table is read; the database file is never opened.
    settings = Settings(_env_file=None, data_dir=Path(tempfile.gettempdir()) / "cloudlet-scope-test",  # type: ignore[call-arg]
                        secret_key="x" * 40)
    return create_app(settings)


def _routes(app: FastAPI) -> Iterator[tuple[BaseRoute, Any]]:
    """Every route with its effective view (the path and dependencies it has once included)."""
    # FastAPI >= 0.16x keeps included routers lazily; iter_route_contexts flattens them.
    iterate = getattr(fastapi.routing, "iter_route_contexts", None)
    if iterate is None:
        yield from ((route, route) for route in app.routes)
        return
    for context in iterate(app.routes):
        yield context.original_route, context


def _operations() -> list[tuple[str, str, set[object]]]:
    result = []
    for route, effective in _routes(_app()):
        if isinstance(route, APIRoute):
            marks = set(_markers(effective.dependant))
            result += [(method, effective.path, marks) for method in sorted(effective.methods)]
    return result


def _all_paths() -> set[tuple[str, str]]:
    return {(method, effective.path) for route, effective in _routes(_app()) if isinstance(route, Route | APIRoute)
            for method in effective.methods or ()}


def _guarded() -> list[tuple[str, str, set[object]]]:
    return [(m, p, marks) for m, p, marks in _operations() if (m, p) not in PUBLIC_ENDPOINTS]


def test_every_route_declares_a_scope_or_is_public() -> None:
    unguarded = [f"{method} {path}" for method, path, marks in _operations()
                 if not marks and (method, path) not in PUBLIC_ENDPOINTS]
    assert unguarded == [], "routes without a caller dependency and not in surfaces/public.py"
    known = {"any", "session", "admin"}
    odd = [f"{m} {p}: {mark!r}" for m, p, marks in _operations() for mark in marks
           if not isinstance(mark, Ability) and mark not in known]
    assert odd == []


def test_every_public_endpoint_exists() -> None:
    missing = sorted(PUBLIC_ENDPOINTS - _all_paths())
    assert missing == [], "surfaces/public.py lists endpoints that no route serves"


def test_the_matrix_sees_the_token_routes() -> None:
    """A guard against a walker that finds nothing: the routes of this work carry their markers."""
    marks = {(m, p): marks for m, p, marks in _operations()}
    assert marks[("GET", "/api/me/api-tokens")] == {Ability.ALL}
    assert marks[("POST", "/api/v1/account/api-keys")] == {Ability.ACCOUNT_WRITE}
    assert marks[("GET", "/api/v1/account/api-keys/{key_id}/usage")] == {Ability.ACCOUNT_READ}
    assert marks[("GET", "/api/v1/test")] == {"any"}


def _url(path: str) -> str:
    return PARAM.sub("1", path)


def _lacking(marks: set[object]) -> str:
    """A single ability that grants none of the abilities a route asks for."""
    needed = [m for m in marks if isinstance(m, Ability)]
    for candidate in Ability:
        if candidate is not Ability.ALL and not any(grants([candidate.value], n) for n in needed):
            return candidate.value
    raise AssertionError(f"no ability lacks all of {needed}")


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    """Plenty of requests per token: the matrix makes many."""
    return {"token_rate_per_minute": 100_000, "token_rate_per_hour": 1_000_000}


def test_a_credential_without_the_routes_scope_is_refused(api: Api, runtime: Runtime) -> None:
    jane = make_user(runtime, "jane@example.com")
    make_user(runtime, "root@example.com", admin=True)  # so "admin" is a real distinction
    wrong: list[str] = []
    for method, path, marks in _guarded():
        url = _url(path)
        kwargs: dict[str, Any] = {"json": {}} if method in BODY_METHODS else {}
        anonymous = api.request(method, url, **kwargs)
        if anonymous.status_code != 401:
            wrong.append(f"{method} {path} without a credential: {anonymous.status_code}, expected 401")
        if any(isinstance(m, Ability) for m in marks):
            credential, what = mint_token(runtime, jane, _lacking(marks)), "a token with another ability"
        elif "admin" in marks:
            credential, what = jane.token, "a non-admin's full-access token"
        elif "session" in marks:
            credential, what = jane.token, "a full-access API token"
        else:
            continue
        reply = api.as_(credential).request(method, url, **kwargs)
        if reply.status_code != 403:
            wrong.append(f"{method} {path} with {what}: {reply.status_code}, expected 403")
    assert wrong == []
