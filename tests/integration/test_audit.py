"""The audit log: every mutating request is recorded, whoever made it and however it ended;
operators read it, filtered, at /v1/admin/audit-logs and download it from /export."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import timedelta

import pytest
from fastapi import APIRouter, Response
from fastapi.testclient import TestClient
from pydantic import BaseModel

from cloudlet.app import create_app
from cloudlet.audit import service as audit
from cloudlet.audit.schemas import AuditQuery, ExportFormat
from cloudlet.kit import clock
from cloudlet.kit.errors import Forbidden
from cloudlet.surfaces.deps import AuthedCaller, DbSession, Runtime
from cloudlet.tokens import service as tokens
from tests.conftest import Api
from tests.helpers import PASSWORD, Person, make_user, mint_token

LOGS = "/v1/admin/audit-logs"
EXPORT = "/v1/admin/audit-logs/export"


class Widget(BaseModel):
    """The body the probe endpoint validates."""

    size: int


# A small router of our own, so the tests drive the real middleware through every outcome of a
# mutating request: success, a rejected body, an error raised after authentication, a self-revoke.
probe = APIRouter()


@probe.post("/v1/probe/widgets/{widget_id}")
def make_widget(widget_id: int, body: Widget, caller: AuthedCaller, db: DbSession) -> dict[str, int]:
    """Succeed, or refuse a size of 13 after authenticating (the session rolls back)."""
    if body.size == 13:
        raise Forbidden("Unlucky widgets are not allowed.")
    return {"widget_id": widget_id, "size": body.size}


@probe.delete("/v1/probe/tokens/self", status_code=204)
def revoke_own_token(caller: AuthedCaller, db: DbSession) -> Response:
    """Revoke the very token that authenticates this request."""
    assert caller.token is not None
    tokens.revoke(db, caller.user_id, caller.token.id)
    return Response(status_code=204)


@pytest.fixture
def client(runtime: Runtime) -> Iterator[Api]:
    """The real app with the probe routes added."""
    app = create_app(runtime=runtime)
    app.include_router(probe)
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield Api(test_client)


@pytest.fixture
def admin(runtime: Runtime) -> Person:
    """An operator."""
    return make_user(runtime, "root@example.com", admin=True)


def logs(client: Api, admin: Person, **params: object) -> dict[str, object]:
    """The audit log as the admin sees it with these filters."""
    reply = client.as_(admin.token).get(LOGS, params=params)
    assert reply.status_code == 200, reply.text
    body: dict[str, object] = reply.json()
    return body


def entries(client: Api, admin: Person, **params: object) -> list[dict[str, object]]:
    """Just the entries."""
    found = logs(client, admin, **params)["logs"]
    assert isinstance(found, list)
    return found


def token_id(plaintext: str) -> int:
    """The id part of an `<id>|<secret>` token."""
    return int(plaintext.partition("|")[0])


def test_only_admins_read_the_log(client: Api, runtime: Runtime, admin: Person) -> None:
    jane = make_user(runtime, "jane@example.com")
    for path in (LOGS, EXPORT):
        assert client.get(path).status_code == 401
        refused = client.as_(jane.token).get(path)
        assert refused.status_code == 403
        assert refused.json() == {"error": "Administrator access is required."}
        assert client.as_(jane.jwt).get(path).status_code == 403
        # an admin's token without every ability is not an admin credential
        narrow = mint_token(runtime, admin, "instances:read")
        assert client.as_(narrow).get(path).status_code == 403
        assert client.as_(admin.token).get(path).status_code == 200
        assert client.as_(admin.jwt).get(path).status_code == 200


def test_a_request_made_with_a_token_is_recorded_with_who_what_and_outcome(
        client: Api, runtime: Runtime, admin: Person) -> None:
    jane = make_user(runtime, "jane@example.com")
    reply = client.as_(jane.token).post("/v1/probe/widgets/7", json={"size": 3},
                                        headers={"X-Request-ID": "req-abc-123"})
    assert reply.status_code == 200
    assert reply.headers["X-Request-ID"] == "req-abc-123"
    [entry] = entries(client, admin)
    assert entry["actor_user_id"] == jane.id
    assert entry["actor_email"] == "jane@example.com"
    assert entry["token_id"] == token_id(jane.token)
    assert entry["ip_address"] == "testclient"
    assert (entry["method"], entry["path"], entry["target"]) == ("POST", "/v1/probe/widgets/7", "widget_id=7")
    assert entry["status"] == 200
    assert entry["request_id"] == "req-abc-123"
    assert isinstance(entry["id"], int) and str(entry["created_at"]).startswith(str(clock.now().year))


def test_a_request_signed_in_with_a_jwt_is_recorded_without_a_token(
        client: Api, runtime: Runtime, admin: Person) -> None:
    jane = make_user(runtime, "jane@example.com")
    reply = client.as_(jane.jwt).post("/v1/probe/widgets/8", json={"size": 1})
    assert reply.status_code == 200
    [entry] = entries(client, admin)
    assert (entry["actor_user_id"], entry["actor_email"], entry["token_id"]) == (jane.id, jane.email, None)
    assert entry["request_id"] == reply.headers["X-Request-ID"]
    assert len(str(entry["request_id"])) == 32  # generated when the client sent none


def test_failed_requests_are_recorded_too(client: Api, runtime: Runtime, admin: Person) -> None:
    jane = make_user(runtime, "jane@example.com")
    assert client.post("/v1/probe/widgets/1", json={"size": 1}).status_code == 401
    assert client.as_("cl_not-a-real-token").put("/api/v1/test").status_code == 405
    bad_body = client.as_(jane.token).post("/v1/probe/widgets/2", json={"size": "big"})
    assert bad_body.status_code == 400  # Shardlyn renders validation errors as 400
    refused = client.as_(jane.jwt).post("/v1/probe/widgets/3", json={"size": 13})
    assert refused.status_code == 403
    client.as_(jane.token).get("/api/v1/test")  # reads are not audited
    found = entries(client, admin)
    assert [(e["method"], e["path"], e["status"]) for e in found] == [
        ("POST", "/v1/probe/widgets/3", 403),
        ("POST", "/v1/probe/widgets/2", 400),
        ("PUT", "/api/v1/test", 405),
        ("POST", "/v1/probe/widgets/1", 401),
    ]
    forbidden, invalid, not_allowed, anonymous = found
    # the 403 and the 400 rolled back the request's session; the actor is still known
    assert (forbidden["actor_user_id"], forbidden["actor_email"], forbidden["token_id"]) == (
        jane.id, jane.email, None)
    assert (invalid["actor_user_id"], invalid["actor_email"], invalid["token_id"]) == (
        jane.id, jane.email, token_id(jane.token))
    # nobody was authenticated for these two: no actor is claimed, but the address is kept
    for entry in (not_allowed, anonymous):
        assert (entry["actor_user_id"], entry["actor_email"], entry["token_id"]) == (None, None, None)
        assert entry["ip_address"] == "testclient"


def test_a_token_that_revokes_itself_is_still_recorded(client: Api, runtime: Runtime, admin: Person) -> None:
    jane = make_user(runtime, "jane@example.com")
    doomed = mint_token(runtime, jane, "*")
    assert client.as_(doomed).delete("/v1/probe/tokens/self").status_code == 204
    assert client.as_(doomed).delete("/v1/probe/tokens/self").status_code == 401
    revoked, rejected = entries(client, admin)[::-1]
    assert (revoked["status"], revoked["token_id"], revoked["actor_user_id"]) == (204, token_id(doomed), jane.id)
    assert (rejected["status"], rejected["token_id"], rejected["actor_user_id"]) == (401, None, None)


def test_filters_combine_and_pages_are_newest_first(client: Api, runtime: Runtime, admin: Person) -> None:
    jane = make_user(runtime, "jane@example.com")
    john = make_user(runtime, "john@example.com")
    second_token = mint_token(runtime, jane, "*")
    with clock.travel(timedelta(days=-2)):
        client.as_(jane.token).post("/v1/probe/widgets/1", json={"size": 1})
    client.as_(jane.token).post("/v1/probe/widgets/2", json={"size": 13})
    client.as_(second_token).post("/v1/probe/widgets/3", json={"size": 1})
    client.as_(john.jwt).post("/v1/probe/widgets/4", json={"size": 1})
    client.as_(john.jwt).delete("/v1/probe/widgets/5")
    client.post("/v1/probe%_x/1")  # a path with LIKE wildcards, recorded literally

    everything = logs(client, admin)
    assert (everything["total"], everything["limit"], everything["offset"]) == (6, 50, 0)
    ids = [e["id"] for e in everything["logs"]]  # type: ignore[union-attr]
    assert ids == sorted(ids, reverse=True)

    def targets(**params: object) -> list[object]:
        return [e["target"] for e in entries(client, admin, **params)]

    assert targets(actor_user_id=jane.id) == ["widget_id=3", "widget_id=2", "widget_id=1"]
    assert targets(token_id=token_id(second_token)) == ["widget_id=3"]
    assert targets(token_id=token_id(jane.token), status=403) == ["widget_id=2"]
    assert targets(method="delete") == ["widget_id=5"]
    assert targets(path="/v1/probe/widgets/", actor_user_id=john.id) == ["widget_id=4"]
    assert [e["path"] for e in entries(client, admin, path="/v1/probe%")] == ["/v1/probe%_x/1"]
    assert entries(client, admin, path="/v1/probe_") == []
    day_ago = (clock.now() - timedelta(days=1)).isoformat()
    assert targets(until=day_ago) == ["widget_id=1"]
    assert len(entries(client, admin, since=day_ago)) == 5
    naive_day_ago = (clock.now() - timedelta(days=1)).replace(tzinfo=None).isoformat()
    assert len(entries(client, admin, since=naive_day_ago)) == 5  # no zone means UTC
    assert entries(client, admin, actor_user_id=admin.id) == []  # the admin's own reads are not audited

    page = logs(client, admin, limit=2, offset=1)
    assert (page["total"], page["limit"], page["offset"]) == (6, 2, 1)
    assert [e["id"] for e in page["logs"]] == ids[1:3]  # type: ignore[union-attr]


BAD_FILTERS: list[dict[str, object]] = [
    {"method": "GET"}, {"method": "FETCH"}, {"status": 99}, {"status": "ok"}, {"limit": 0}, {"limit": 501},
    {"offset": -1}, {"since": "yesterday"}, {"until": "2025-13-01T00:00:00Z"}, {"actor_user_id": "jane"},
    {"token_id": 0}, {"since": "2025-01-02T00:00:00Z", "until": "2025-01-01T00:00:00Z"},
]


def test_bad_filters_are_a_400_that_says_what_is_wrong(client: Api, admin: Person) -> None:
    for params in BAD_FILTERS:
        for path in (LOGS, EXPORT):
            if path == EXPORT and set(params) & {"limit", "offset"}:
                continue
            reply = client.as_(admin.token).get(path, params=params)
            assert reply.status_code == 400, (path, params, reply.text)
            message = reply.json()["error"]
            assert any(name in message for name in params), message


def test_export_is_a_csv_download_of_the_filtered_log(client: Api, runtime: Runtime, admin: Person) -> None:
    jane = make_user(runtime, "=cmd|calc@example.com")
    client.as_(jane.token).post("/v1/probe/widgets/1", json={"size": 1})
    client.as_(jane.token).post("/v1/probe/widgets/2", json={"size": 13})
    client.post("/v1/probe/widgets/3", json={"size": 1})

    reply = client.as_(admin.token).get(EXPORT, params={"actor_user_id": jane.id})
    assert reply.status_code == 200
    assert reply.headers["content-type"].startswith("text/csv")
    disposition = reply.headers["content-disposition"]
    assert disposition.startswith('attachment; filename="audit-logs-') and disposition.endswith('.csv"')
    assert (reply.headers["X-Total-Count"], reply.headers["X-Export-Rows"]) == ("2", "2")
    assert reply.headers["X-Export-Truncated"] == "false"
    assert reply.headers["X-Export-Limit"] == "100000"
    rows = list(csv.DictReader(io.StringIO(reply.text)))
    assert [(r["target"], r["status"]) for r in rows] == [("widget_id=2", "403"), ("widget_id=1", "200")]
    assert list(rows[0]) == ["id", "created_at", "actor_user_id", "actor_email", "token_id", "ip_address",
                             "method", "path", "target", "status", "request_id"]
    # a cell a spreadsheet would run as a formula is defused
    assert rows[0]["actor_email"] == "'=cmd|calc@example.com"
    assert rows[0]["token_id"] == str(token_id(jane.token))

    anonymous = client.as_(admin.token).get(EXPORT, params={"status": 401, "format": "csv"})
    [row] = list(csv.DictReader(io.StringIO(anonymous.text)))
    assert (row["actor_user_id"], row["actor_email"], row["token_id"]) == ("", "", "")


def test_export_as_json_lines_matches_the_list(client: Api, runtime: Runtime, admin: Person) -> None:
    jane = make_user(runtime, "jane@example.com")
    for n in range(3):
        client.as_(jane.jwt).post(f"/v1/probe/widgets/{n}", json={"size": n})
    reply = client.as_(admin.token).get(EXPORT, params={"format": "jsonl"})
    assert reply.status_code == 200
    assert reply.headers["content-type"].startswith("application/x-ndjson")
    assert reply.headers["content-disposition"].endswith('.jsonl"')
    exported = [json.loads(line) for line in reply.text.splitlines()]
    assert exported == entries(client, admin)
    assert client.as_(admin.token).get(EXPORT, params={"format": "xml"}).status_code == 400


def test_export_walks_past_one_batch_and_stops_at_its_bound(client: Api, runtime: Runtime, admin: Person) -> None:
    count = audit.EXPORT_BATCH + 203
    with runtime.db.session() as session:
        audit.record_many(session, [
            audit.AuditRecord(actor_user_id=None, actor_email=None, token_id=None, ip="192.0.2.1", method="POST",
                              path=f"/v1/bulk/{n}", target=None, status=201, request_id=None)
            for n in range(count)
        ])
    reply = client.as_(admin.token).get(EXPORT, params={"format": "jsonl", "path": "/v1/bulk/"})
    paths = [json.loads(line)["path"] for line in reply.text.splitlines()]
    assert paths == [f"/v1/bulk/{n}" for n in reversed(range(count))]
    assert reply.headers["X-Total-Count"] == str(count)
    bounded = list(audit.export_lines(runtime.db, AuditQuery(path="/v1/bulk/"), ExportFormat.CSV, max_rows=5))
    assert "".join(bounded).count("\r\n") == 1 + 5  # the header and five rows


def test_real_endpoints_are_audited_on_every_surface(client: Api, runtime: Runtime, admin: Person) -> None:
    jane = make_user(runtime, "jane@example.com")
    wrong = client.post("/v1/auth/login", json={"email": "jane@example.com", "password": "not-her-password-1"})
    assert wrong.status_code == 401
    doomed = mint_token(runtime, jane, "*")
    revoked = client.as_(doomed).delete(f"/api/me/api-tokens/{token_id(doomed)}")
    assert revoked.status_code == 204
    created = client.as_(jane.token).post("/api/v1/account/api-keys", json={"name": "ci", "scopes": ["vps:read"]})
    assert created.status_code in (200, 201), created.text
    found = entries(client, admin)
    assert [(e["method"], e["path"], e["status"]) for e in found] == [
        ("POST", "/api/v1/account/api-keys", created.status_code),
        ("DELETE", f"/api/me/api-tokens/{token_id(doomed)}", 204),
        ("POST", "/v1/auth/login", 401),
    ]
    cyberpanel, primary, login = found
    assert (cyberpanel["actor_user_id"], cyberpanel["token_id"]) == (jane.id, token_id(jane.token))
    assert (primary["actor_user_id"], primary["token_id"], primary["target"]) == (
        jane.id, token_id(doomed), f"token_id={token_id(doomed)}")
    assert login["ip_address"] == "testclient"


def test_a_sign_in_names_who_signed_in_without_saying_so_in_the_answer(
        client: Api, runtime: Runtime, admin: Person) -> None:
    jane = make_user(runtime, "jane@example.com")
    reply = client.post("/v1/auth/login", json={"email": "jane@example.com", "password": PASSWORD})
    assert reply.status_code == 200
    assert set(reply.json()) == {"access_token", "refresh_token", "expires_in", "token_type"}
    renewed = client.post("/v1/auth/refresh", json={"refresh_token": reply.json()["refresh_token"]})
    assert renewed.status_code == 200 and "user_id" not in renewed.json()
    signed_in = entries(client, admin, path="/v1/auth/")
    assert [(e["path"], e["actor_user_id"], e["actor_email"]) for e in signed_in] == [
        ("/v1/auth/refresh", jane.id, "jane@example.com"),
        ("/v1/auth/login", jane.id, "jane@example.com"),
    ]
