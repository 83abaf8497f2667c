"""Shardlyn /v1/users and /v1/admin/users: the caller's account, password change, administration, suspension."""

from __future__ import annotations

from cloudlet.projects.models import Project
from cloudlet.surfaces.deps import Runtime
from tests.conftest import Api
from tests.helpers import PASSWORD, add_member, make_team, make_user


def sign_in(api: Api, email: str, password: str = PASSWORD) -> dict[str, str]:
    reply = api.post("/v1/auth/login", json={"email": email, "password": password})
    assert reply.status_code == 200, reply.text
    body: dict[str, str] = reply.json()
    return body


def test_me_answers_for_a_session_and_for_an_api_token(api: Api, runtime: Runtime) -> None:
    jane = make_user(runtime, "jane@example.com", name="Jane")
    by_jwt = api.as_(jane.jwt).get("/v1/users/me")
    assert by_jwt.status_code == 200
    body = by_jwt.json()
    assert set(body) >= {"id", "email", "name", "is_admin", "status", "mfa_enabled", "created_at"}
    assert body["id"] == jane.id and body["email"] == "jane@example.com" and body["name"] == "Jane"
    assert body["is_admin"] is False and body["status"] == "active" and body["mfa_enabled"] is False
    assert api.as_(jane.token).get("/v1/users/me").json()["id"] == jane.id
    assert api.get("/v1/users/me").status_code == 401


def test_password_change_checks_the_current_one_and_ends_sessions(api: Api, runtime: Runtime) -> None:
    make_user(runtime, "jane@example.com")
    session = sign_in(api, "jane@example.com")
    me = api.as_(session["access_token"])
    wrong = me.post("/v1/users/me/password", json={"current_password": "nope-nope-1", "new_password": "new-pass-123"})
    assert wrong.status_code == 400
    assert wrong.json() == {"error": "The current password is incorrect."}
    weak = me.post("/v1/users/me/password", json={"current_password": PASSWORD, "new_password": "short"})
    assert weak.status_code == 400

    changed = me.post("/v1/users/me/password", json={"current_password": PASSWORD, "new_password": "new-pass-123"})
    assert changed.status_code == 200
    assert api.post("/v1/auth/refresh", json={"refresh_token": session["refresh_token"]}).status_code == 401
    assert api.post("/v1/auth/login", json={"email": "jane@example.com", "password": PASSWORD}).status_code == 401
    sign_in(api, "jane@example.com", "new-pass-123")


def test_password_change_needs_a_session(api: Api, runtime: Runtime) -> None:
    jane = make_user(runtime, "jane@example.com")
    reply = api.as_(jane.token).post("/v1/users/me/password",
                                     json={"current_password": PASSWORD, "new_password": "new-pass-123"})
    assert reply.status_code == 403


def test_admins_list_create_get_and_delete_users(api: Api, runtime: Runtime) -> None:
    root = make_user(runtime, "root@example.com", admin=True)
    make_user(runtime, "jane@example.com")
    admin = api.as_(root.jwt)
    created = admin.post("/v1/users", json={"email": "Ops@Example.com", "password": PASSWORD, "name": "Ops",
                                            "is_admin": True})
    assert created.status_code == 201, created.text
    ops = created.json()
    assert ops["email"] == "ops@example.com" and ops["is_admin"] is True
    assert admin.post("/v1/users", json={"email": "ops@example.com", "password": PASSWORD}).status_code == 409

    listed = admin.get("/v1/users").json()
    assert listed["total"] == 3
    assert [u["email"] for u in listed["users"]] == ["root@example.com", "jane@example.com", "ops@example.com"]
    page = admin.get("/v1/users", params={"limit": 1, "offset": 1}).json()
    assert page == {"users": [listed["users"][1]], "total": 3}
    assert admin.get("/v1/admin/users").json() == listed
    assert admin.get("/v1/users", params={"limit": 0}).status_code == 400

    assert admin.get(f"/v1/users/{ops['id']}").json() == ops
    assert admin.delete(f"/v1/users/{ops['id']}").status_code == 204
    assert admin.get(f"/v1/users/{ops['id']}").status_code == 404
    assert admin.get(f"/v1/users/{ops['id']}").json() == {"error": "User not found."}
    assert api.post("/v1/auth/login", json={"email": "ops@example.com", "password": PASSWORD}).status_code == 401
    assert admin.get("/v1/users").json()["total"] == 2


def test_an_admin_cannot_delete_themself(api: Api, runtime: Runtime) -> None:
    root = make_user(runtime, "root@example.com", admin=True)
    reply = api.as_(root.jwt).delete(f"/v1/users/{root.id}")
    assert reply.status_code == 400
    assert reply.json() == {"error": "You cannot delete your own account."}


def test_deleting_a_user_ends_their_credentials(api: Api, runtime: Runtime) -> None:
    root = make_user(runtime, "root@example.com", admin=True)
    jane = make_user(runtime, "jane@example.com")
    session = sign_in(api, "jane@example.com")
    assert api.as_(root.jwt).delete(f"/v1/users/{jane.id}").status_code == 204
    assert api.as_(jane.token).get("/v1/users/me").status_code == 401
    assert api.as_(jane.jwt).get("/v1/users/me").status_code == 401
    assert api.post("/v1/auth/refresh", json={"refresh_token": session["refresh_token"]}).status_code == 401


def test_user_administration_is_for_admins_only(api: Api, runtime: Runtime) -> None:
    jane = make_user(runtime, "jane@example.com")
    joe = make_user(runtime, "joe@example.com")
    for method, path in [("GET", "/v1/users"), ("POST", "/v1/users"), ("GET", f"/v1/users/{joe.id}"),
                         ("DELETE", f"/v1/users/{joe.id}"), ("GET", "/v1/admin/users"),
                         ("POST", f"/v1/admin/users/{joe.id}/suspend"),
                         ("POST", f"/v1/admin/users/{joe.id}/unsuspend")]:
        reply = api.as_(jane.jwt).request(method, path, json={"email": "x@example.com", "password": PASSWORD})
        assert reply.status_code == 403, (method, path, reply.text)
        assert reply.json() == {"error": "Administrator access is required."}
    assert api.get("/v1/users").status_code == 401


def test_a_suspended_user_is_refused_everywhere_until_unsuspended(api: Api, runtime: Runtime) -> None:
    root = make_user(runtime, "root@example.com", admin=True)
    jane = make_user(runtime, "jane@example.com")
    session = sign_in(api, "jane@example.com")
    admin = api.as_(root.jwt)

    suspended = admin.post(f"/v1/admin/users/{jane.id}/suspend", json={"reason": "unpaid invoices"})
    assert suspended.status_code == 200
    assert suspended.json()["status"] == "suspended" and suspended.json()["suspended_reason"] == "unpaid invoices"
    assert api.as_(jane.jwt).get("/v1/users/me").status_code == 403
    assert api.as_(jane.token).get("/v1/users/me").json() == {"error": "This account is suspended."}
    refused = api.post("/v1/auth/login", json={"email": "jane@example.com", "password": PASSWORD})
    assert refused.status_code == 403 and refused.json() == {"error": "This account is suspended."}
    assert api.post("/v1/auth/refresh", json={"refresh_token": session["refresh_token"]}).status_code == 401
    wrong = api.post("/v1/auth/login", json={"email": "jane@example.com", "password": "not-her-password"})
    assert wrong.status_code == 401  # a wrong password does not learn that the account is suspended

    back = admin.post(f"/v1/admin/users/{jane.id}/unsuspend")
    assert back.status_code == 200 and back.json()["status"] == "active" and back.json()["suspended_reason"] is None
    assert api.as_(jane.token).get("/v1/users/me").status_code == 200
    sign_in(api, "jane@example.com")


def test_suspend_without_a_body_and_not_oneself(api: Api, runtime: Runtime) -> None:
    root = make_user(runtime, "root@example.com", admin=True)
    jane = make_user(runtime, "jane@example.com")
    assert api.as_(root.jwt).post(f"/v1/admin/users/{jane.id}/suspend").json()["status"] == "suspended"
    assert api.as_(root.jwt).post(f"/v1/admin/users/{root.id}/suspend").status_code == 400
    assert api.as_(root.jwt).post("/v1/admin/users/999999/suspend").status_code == 404


def test_deleting_a_user_removes_the_projects_only_they_belong_to(api: Api, runtime: Runtime) -> None:
    admin = make_user(runtime, "admin@example.com", admin=True)
    jane = make_user(runtime, "jane@example.com")
    solo = make_team(runtime, jane, "Solo")
    assert api.as_(admin.token).delete(f"/v1/users/{jane.id}").status_code == 204
    with runtime.db.session(write=False) as session:
        assert session.get(Project, jane.project_id) is None
        assert session.get(Project, solo) is None


def test_the_last_owner_of_a_shared_project_cannot_be_deleted(api: Api, runtime: Runtime) -> None:
    admin = make_user(runtime, "admin@example.com", admin=True)
    jane = make_user(runtime, "jane@example.com")
    bob = make_user(runtime, "bob@example.com")
    team = make_team(runtime, jane, "Acme")
    add_member(runtime, jane, team, bob)
    refused = api.as_(admin.token).delete(f"/v1/users/{jane.id}")
    assert refused.status_code == 409
    assert refused.json() == {"error": "The user is the only owner of the project 'Acme'; "
                                       "make another member an owner first."}
    assert api.as_(jane.token).get("/api/me").status_code == 200  # nothing was removed
    promoted = api.as_(jane.token).put(f"/v1/organizations/{team}/members/{bob.id}/role", json={"role": "owner"})
    assert promoted.status_code == 200, promoted.text
    assert api.as_(admin.token).delete(f"/v1/users/{jane.id}").status_code == 204
    assert [p["name"] for p in api.as_(bob.token).get("/api/me").json()["projects"]] == ["default", "Acme"]


def test_a_user_whose_wallet_holds_entries_is_not_deleted(api: Api, runtime: Runtime) -> None:
    admin = make_user(runtime, "admin@example.com", admin=True)
    jane = make_user(runtime, "jane@example.com")
    credit = api.as_(admin.token).post(f"/v1/admin/wallets/{jane.project_id}/credits", json={"amount_cents": 500})
    assert credit.status_code == 201
    refused = api.as_(admin.token).delete(f"/v1/users/{jane.id}")
    assert refused.status_code == 409 and "still holds resources" in refused.json()["error"]
    assert api.as_(jane.token).get("/api/wallet/balance").json()["balance_cents"] == 500
