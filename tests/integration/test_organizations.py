"""Shardlyn's organizations: the same projects, members, invites and permissions, in Shardlyn's dialect."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from cloudlet.projects import repository
from cloudlet.projects import service as projects
from cloudlet.surfaces.deps import Runtime
from cloudlet.tokens import service as tokens
from cloudlet.tokens.schemas import TokenCreate
from tests.conftest import Api
from tests.helpers import Person, add_member, invitation_token, make_team, make_user


@dataclass
class Org:
    """Jane owns the organization; Bob is a member."""

    id: int
    owner: Person
    member: Person

    @property
    def url(self) -> str:
        """The organization's path."""
        return f"/v1/organizations/{self.id}"


@pytest.fixture
def org(runtime: Runtime) -> Org:
    jane = make_user(runtime, "jane@example.com", name="Jane")
    bob = make_user(runtime, "bob@example.com", name="Bob")
    project = make_team(runtime, jane, "Acme")
    add_member(runtime, jane, project, bob)
    return Org(project, jane, bob)


# --- organizations -------------------------------------------------------------------------------


def test_create_list_get_rename_delete(api: Api, runtime: Runtime) -> None:
    jane = make_user(runtime, "jane@example.com")
    as_jane = api.as_(jane.jwt)

    created = as_jane.post("/v1/organizations", json={"name": "  Acme  "})
    assert created.status_code == 201, created.text
    org = created.json()
    assert set(org) == {"id", "name", "type", "role", "created_at"}
    assert (org["name"], org["type"], org["role"]) == ("Acme", "team", "owner")
    assert org["created_at"].endswith("Z")

    listed = as_jane.get("/v1/organizations").json()
    assert [(o["id"], o["type"]) for o in listed] == [(str(jane.project_id), "personal"), (org["id"], "team")]
    assert as_jane.get(f"/v1/organizations/{org['id']}").json() == org

    renamed = as_jane.put(f"/v1/organizations/{org['id']}", json={"name": "Acme Ltd"})
    assert renamed.status_code == 200 and renamed.json()["name"] == "Acme Ltd"

    assert as_jane.delete(f"/v1/organizations/{org['id']}").status_code == 204
    assert as_jane.get(f"/v1/organizations/{org['id']}").status_code == 404
    assert [o["id"] for o in as_jane.get("/v1/organizations").json()] == [str(jane.project_id)]


def test_the_personal_organization_cannot_be_deleted(api: Api, runtime: Runtime) -> None:
    jane = make_user(runtime, "jane@example.com")
    reply = api.as_(jane.token).delete(f"/v1/organizations/{jane.project_id}")
    assert reply.status_code == 400
    assert reply.json() == {"error": "A personal project cannot be deleted."}


def test_members_cannot_rename_or_delete(api: Api, org: Org) -> None:
    rename = api.as_(org.member.token).put(org.url, json={"name": "Mine"})
    assert rename.status_code == 403
    assert rename.json() == {"error": "Only project owners can rename the project."}
    delete = api.as_(org.member.token).delete(org.url)
    assert delete.status_code == 403
    assert api.as_(org.member.token).get(org.url).json()["role"] == "member"


@pytest.mark.parametrize("body", [{}, {"name": ""}, {"name": "   "}, {"name": "x" * 201}, {"name": 5}])
def test_bad_names_are_400(api: Api, org: Org, body: dict[str, object]) -> None:
    created = api.as_(org.owner.token).post("/v1/organizations", json=body)
    assert created.status_code == 400
    assert set(created.json()) == {"error"}
    assert api.as_(org.owner.token).put(org.url, json=body).status_code == 400


@pytest.mark.parametrize("ident", ["abc", "0x1", "99999999999", "-1"])
def test_ids_that_cannot_exist_are_404(api: Api, org: Org, ident: str) -> None:
    reply = api.as_(org.owner.token).get(f"/v1/organizations/{ident}")
    assert reply.status_code == 404
    assert reply.json() == {"error": "Organization not found."}


def test_a_fenced_token_cannot_create_organizations(api: Api, runtime: Runtime, org: Org) -> None:
    with runtime.db.session() as session:
        fenced = tokens.mint(session, user_id=org.owner.id, project_id=org.id, data=TokenCreate(name="ci"),
                             caller_abilities=["*"], default_per_minute=1000, default_per_hour=10_000).plaintext
    assert api.as_(fenced).post("/v1/organizations", json={"name": "Other"}).status_code == 403
    assert [o["id"] for o in api.as_(fenced).get("/v1/organizations").json()] == [str(org.id)]


# --- members and roles ---------------------------------------------------------------------------


def test_members_list(api: Api, org: Org) -> None:
    reply = api.as_(org.member.token).get(f"{org.url}/members")
    assert reply.status_code == 200
    members = reply.json()
    assert [(m["user_id"], m["role"], m["email"], m["name"]) for m in members] == [
        (str(org.owner.id), "owner", "jane@example.com", "Jane"),
        (str(org.member.id), "member", "bob@example.com", "Bob"),
    ]
    assert set(members[0]) == {"id", "user_id", "email", "name", "role", "permissions", "joined_at"}
    assert members[1]["permissions"] == []


def test_invite_list_cancel_and_accept_invites(api: Api, runtime: Runtime, org: Org) -> None:
    carol = make_user(runtime, "carol@example.com")
    sent = api.as_(org.owner.token).post(f"{org.url}/members/invite", json={"email": "carol@example.com"})
    assert sent.status_code == 201, sent.text
    invite = sent.json()
    assert (invite["organization_id"], invite["email"], invite["role"], invite["status"]) == (
        str(org.id), "carol@example.com", "member", "pending")
    assert invite["invited_by"]["id"] == str(org.owner.id)
    assert [i["id"] for i in api.as_(org.member.token).get(f"{org.url}/invites").json()] == [invite["id"]]

    again = api.as_(org.owner.token).post(f"{org.url}/members/invite", json={"email": "carol@example.com"})
    assert again.status_code == 409
    assert again.json() == {"error": "An active invitation already exists for that email."}

    token = invitation_token(runtime, "carol@example.com")
    accepted = api.as_(carol.token).post(f"/v1/invites/{token}/accept")
    assert accepted.status_code == 200, accepted.text
    body = accepted.json()
    assert body["organization"]["id"] == str(org.id) and body["organization"]["role"] == "member"
    assert body["membership"]["user_id"] == str(carol.id)
    assert api.as_(org.owner.token).get(f"{org.url}/invites").json() == []

    dave_invite = api.as_(org.owner.token).post(f"{org.url}/members/invite",
                                                json={"email": "dave@example.com", "role": "owner"}).json()
    assert api.as_(org.owner.token).delete(f"{org.url}/invites/{dave_invite['id']}").status_code == 204
    dave = make_user(runtime, "dave@example.com")
    gone = api.as_(dave.token).post(f"/v1/invites/{invitation_token(runtime, 'dave@example.com')}/accept")
    assert gone.status_code == 410
    assert gone.json() == {"error": "This invitation has been cancelled."}


def test_invite_errors_in_shardlyn_format(api: Api, runtime: Runtime, org: Org) -> None:
    member = api.as_(org.member.token).post(f"{org.url}/members/invite", json={"email": "carol@example.com"})
    assert member.status_code == 403
    assert member.json() == {"error": "Only project owners can invite teammates."}
    existing = api.as_(org.owner.token).post(f"{org.url}/members/invite", json={"email": "bob@example.com"})
    assert existing.status_code == 400
    assert existing.json() == {"error": "That user is already a project member."}
    bad = api.as_(org.owner.token).post(f"{org.url}/members/invite", json={"email": "nope"})
    assert bad.status_code == 400
    eve = make_user(runtime, "eve@example.com")
    api.as_(org.owner.token).post(f"{org.url}/members/invite", json={"email": "carol@example.com"})
    wrong = api.as_(eve.token).post(f"/v1/invites/{invitation_token(runtime, 'carol@example.com')}/accept")
    assert wrong.status_code == 403
    assert wrong.json() == {"error": "This invitation was sent to a different email address."}


def test_remove_members_by_user_id(api: Api, org: Org) -> None:
    refused = api.as_(org.member.token).delete(f"{org.url}/members/{org.owner.id}")
    assert refused.status_code == 403
    last = api.as_(org.owner.token).delete(f"{org.url}/members/{org.owner.id}")
    assert last.status_code == 400
    assert last.json() == {"error": "Cannot remove the last remaining owner."}
    assert api.as_(org.owner.token).delete(f"{org.url}/members/{org.member.id}").status_code == 204
    assert api.as_(org.member.token).get(org.url).status_code == 404
    assert api.as_(org.owner.token).delete(f"{org.url}/members/{org.member.id}").status_code == 404


def test_roles_change_but_one_owner_always_stays(api: Api, org: Org) -> None:
    as_jane = api.as_(org.owner.token)
    member_tries = api.as_(org.member.token).put(f"{org.url}/members/{org.member.id}/role", json={"role": "owner"})
    assert member_tries.status_code == 403
    demote_last = as_jane.put(f"{org.url}/members/{org.owner.id}/role", json={"role": "member"})
    assert demote_last.status_code == 400
    assert demote_last.json() == {"error": "A project must keep at least one owner."}

    promoted = as_jane.put(f"{org.url}/members/{org.member.id}/role", json={"role": "owner"})
    assert promoted.status_code == 200
    assert promoted.json()["role"] == "owner" and promoted.json()["user_id"] == str(org.member.id)
    demoted = as_jane.put(f"{org.url}/members/{org.owner.id}/role", json={"role": "member"})
    assert demoted.status_code == 200
    assert api.as_(org.owner.token).get(org.url).json()["role"] == "member"
    assert as_jane.put(f"{org.url}/members/{org.member.id}/role", json={"role": "nobody"}).status_code == 400


# --- permissions ---------------------------------------------------------------------------------


def test_the_permission_catalogue(api: Api, org: Org) -> None:
    reply = api.as_(org.member.token).get("/v1/permissions")
    assert reply.status_code == 200
    keys = {p["key"] for p in reply.json()}
    assert {"members:manage", "instances:billing", "wallet:topup"} <= keys
    assert all(p["description"] for p in reply.json())


def test_grant_and_revoke_a_permission_changes_what_a_member_may_do(api: Api, runtime: Runtime, org: Org) -> None:
    url = f"{org.url}/members/{org.member.id}/permissions"
    as_bob = api.as_(org.member.token)
    assert as_bob.post(f"{org.url}/members/invite", json={"email": "carol@example.com"}).status_code == 403

    denied = as_bob.post(url, json={"key": "members:manage"})
    assert denied.status_code == 403
    assert denied.json() == {"error": "Only project owners can change permissions."}
    granted = api.as_(org.owner.token).post(url, json={"key": "members:manage"})
    assert granted.status_code == 200, granted.text
    assert granted.json() == {"user_id": str(org.member.id), "role": "member", "permissions": ["members:manage"],
                              "effective_permissions": ["members:manage"]}
    assert api.as_(org.owner.token).post(url, json={"key": "members:manage"}).json() == granted.json()
    assert as_bob.get(url).json() == granted.json()
    assert as_bob.get(f"{org.url}/members").json()[1]["permissions"] == ["members:manage"]

    # members:manage lets Bob invite and cancel members' invitations, but not invite owners
    sent = as_bob.post(f"{org.url}/members/invite", json={"email": "carol@example.com"})
    assert sent.status_code == 201
    owner_invite = as_bob.post(f"{org.url}/members/invite", json={"email": "dave@example.com", "role": "owner"})
    assert owner_invite.status_code == 403
    assert as_bob.delete(f"{org.url}/invites/{sent.json()['id']}").status_code == 204

    assert api.as_(org.owner.token).delete(f"{url}/members:manage").status_code == 204
    assert api.as_(org.owner.token).delete(f"{url}/members:manage").status_code == 404
    assert as_bob.post(f"{org.url}/members/invite", json={"email": "erin@example.com"}).status_code == 403
    with runtime.db.session(write=False) as session:
        assert not projects.can(session, org.id, org.member.id, "members:manage")


def test_unknown_permission_keys_are_400(api: Api, org: Org) -> None:
    reply = api.as_(org.owner.token).post(f"{org.url}/members/{org.member.id}/permissions", json={"key": "root"})
    assert reply.status_code == 400
    assert "key" in reply.json()["error"]


def test_owners_hold_every_permission(api: Api, org: Org) -> None:
    body = api.as_(org.member.token).get(f"{org.url}/members/{org.owner.id}/permissions").json()
    assert body["role"] == "owner" and body["permissions"] == []
    assert set(body["effective_permissions"]) == {"members:manage", "instances:billing", "wallet:topup"}


def test_can_is_the_one_decision(runtime: Runtime, org: Org) -> None:
    eve = make_user(runtime, "eve@example.com")
    with runtime.db.session() as session:
        assert projects.can(session, org.id, org.owner.id, "instances:billing")
        assert not projects.can(session, org.id, org.member.id, "instances:billing")
        assert not projects.can(session, org.id, eve.id, "instances:billing")
        membership = projects.require_membership(session, org.member.id, org.id)
        repository.insert_grant_once(session, membership.id, "wallet:topup")
        assert projects.can(session, org.id, org.member.id, "wallet:topup")
        assert not projects.can(session, org.id, org.member.id, "instances:billing")
        with pytest.raises(ValueError):
            projects.can(session, org.id, org.owner.id, "no:such-permission")


def test_the_user_a_personal_project_belongs_to_stays_its_owner(api: Api, runtime: Runtime) -> None:
    jane = make_user(runtime, "jane@example.com")
    dave = make_user(runtime, "dave@example.com")
    add_member(runtime, jane, jane.project_id, dave, role="owner")
    url = f"/v1/organizations/{jane.project_id}/members/{jane.id}"
    message = {"error": "The user a personal project belongs to always stays its owner."}

    removed = api.as_(dave.token).delete(url)
    assert removed.status_code == 400 and removed.json() == message
    demoted = api.as_(dave.token).put(f"{url}/role", json={"role": "member"})
    assert demoted.status_code == 400 and demoted.json() == message
    assert api.as_(jane.token).delete(url).status_code == 400  # nor can she leave it
    assert api.as_(jane.token).get("/api/me").json()["projects"][0]["current_user_role"] == "owner"
    # the co-owner may go
    assert api.as_(dave.token).delete(f"/v1/organizations/{jane.project_id}/members/{dave.id}").status_code == 204
