"""GET /api/me: the user and every project they belong to, with their role; fenced tokens see one."""

from __future__ import annotations

from cloudlet.surfaces.deps import Runtime
from cloudlet.tokens import service as tokens
from cloudlet.tokens.schemas import TokenCreate
from tests.conftest import Api
from tests.helpers import add_member, make_team, make_user, mint_token


def test_me_shows_the_user_and_each_project_with_the_callers_role(api: Api, runtime: Runtime) -> None:
    jane = make_user(runtime, "jane@example.com", name="Jane Operator")
    bob = make_user(runtime, "bob@example.com")
    team = make_team(runtime, jane, "Acme")
    add_member(runtime, jane, team, bob)

    reply = api.as_(bob.token).get("/api/me")

    assert reply.status_code == 200, reply.text
    assert reply.json() == {
        "user": {"id": bob.id, "email": "bob@example.com", "name": "bob", "wallet_balance": 0, "onboarded": False},
        "projects": [
            {"id": bob.project_id, "name": "default", "type": "personal", "current_user_role": "owner"},
            {"id": team, "name": "Acme", "type": "team", "current_user_role": "member"},
        ],
    }
    owner_view = api.as_(jane.jwt).get("/api/me").json()
    assert owner_view["user"]["name"] == "Jane Operator"
    assert [(p["id"], p["current_user_role"]) for p in owner_view["projects"]] == [
        (jane.project_id, "owner"), (team, "owner")]


def test_any_valid_credential_may_ask_even_a_narrow_one(api: Api, runtime: Runtime) -> None:
    jane = make_user(runtime, "jane@example.com")
    narrow = mint_token(runtime, jane, "instances:read")
    reply = api.as_(narrow).get("/api/me")
    assert reply.status_code == 200
    assert reply.json()["user"]["email"] == "jane@example.com"


def test_a_token_fenced_to_one_project_sees_only_that_project(api: Api, runtime: Runtime) -> None:
    jane = make_user(runtime, "jane@example.com")
    team = make_team(runtime, jane, "Acme")
    with runtime.db.session() as session:
        fenced = tokens.mint(session, user_id=jane.id, project_id=team, data=TokenCreate(name="ci"),
                             caller_abilities=["*"], default_per_minute=1000, default_per_hour=10_000).plaintext

    reply = api.as_(fenced).get("/api/me")

    assert reply.status_code == 200
    assert reply.json()["projects"] == [{"id": team, "name": "Acme", "type": "team", "current_user_role": "owner"}]


def test_wallet_balance_is_the_default_projects_ledger(api: Api, runtime: Runtime) -> None:
    admin = make_user(runtime, "admin@example.com", admin=True)
    jane = make_user(runtime, "jane@example.com")
    credit = api.as_(admin.token).post(f"/v1/admin/wallets/{jane.project_id}/credits",
                                       json={"amount_cents": 5240, "reason": "welcome"})
    assert credit.status_code in (200, 201), credit.text
    assert api.as_(jane.token).get("/api/me").json()["user"]["wallet_balance"] == 5240
    assert api.as_(jane.token).get("/api/wallet/balance").json()["balance_cents"] == 5240


def test_me_needs_a_credential(api: Api) -> None:
    reply = api.get("/api/me")
    assert reply.status_code == 401
    assert reply.json()["code"] == "NO_API_KEY"
