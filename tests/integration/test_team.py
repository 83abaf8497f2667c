"""The primary surface's team section: members, invitations, removing, cancelling and accepting."""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select

from cloudlet.kit import clock
from cloudlet.kit.ids import digest
from cloudlet.mail import service as mail
from cloudlet.projects import service as projects
from cloudlet.projects.models import Invitation, Membership
from cloudlet.surfaces.deps import Runtime
from tests.conftest import Api
from tests.helpers import Person, add_member, invitation_token, invite, make_team, make_user, mint_token

MILLIS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


@dataclass
class Team:
    """Jane owns a team project with Bob as a member and a pending invitation for Carol."""

    project: int
    owner: Person
    member: Person
    member_id: int  # Bob's membership id
    carol_token: str


@pytest.fixture
def team(runtime: Runtime) -> Team:
    jane = make_user(runtime, "jane@example.com", name="Jane Operator")
    bob = make_user(runtime, "bob@example.com", name="Bob")
    project = make_team(runtime, jane, "Acme")
    member_id = add_member(runtime, jane, project, bob)
    carol_token = invite(runtime, jane, project, "carol@example.com")
    return Team(project, jane, bob, member_id, carol_token)


def _parse(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


# --- GET members ---------------------------------------------------------------------------------


def test_every_member_sees_members_and_pending_invitations(api: Api, team: Team) -> None:
    reply = api.as_(team.member.token).get(f"/api/projects/{team.project}/members")

    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["project"] == {"id": team.project, "name": "Acme", "type": "team"}
    assert body["current_user_role"] == "member"
    jane = {"id": team.owner.id, "name": "Jane Operator", "email": "jane@example.com"}
    assert body["members"][0]["role"] == "owner" and body["members"][0]["user"] == jane
    assert body["members"][1] == {"id": team.member_id, "role": "member",
                                  "user": {"id": team.member.id, "name": "Bob", "email": "bob@example.com"}}
    [pending] = body["invitations"]
    assert set(pending) == {"id", "email", "role", "expires_at", "inviter"}
    assert pending["email"] == "carol@example.com" and pending["role"] == "member"
    assert pending["inviter"] == jane
    assert MILLIS.match(pending["expires_at"])


def test_expired_and_cancelled_invitations_are_not_listed(api: Api, runtime: Runtime, team: Team) -> None:
    url = f"/api/projects/{team.project}/members"
    invite(runtime, team.owner, team.project, "dave@example.com")
    with clock.travel(timedelta(days=8)):
        assert api.as_(team.owner.token).get(url).json()["invitations"] == []
    dave = next(i for i in api.as_(team.owner.token).get(url).json()["invitations"]
                if i["email"] == "dave@example.com")
    assert api.as_(team.owner.token).delete(f"/api/projects/{team.project}/invitations/{dave['id']}").status_code == 204
    assert [i["email"] for i in api.as_(team.owner.token).get(url).json()["invitations"]] == ["carol@example.com"]


def test_a_stranger_gets_404_for_the_members_list(api: Api, runtime: Runtime, team: Team) -> None:
    eve = make_user(runtime, "eve@example.com")
    reply = api.as_(eve.token).get(f"/api/projects/{team.project}/members")
    assert reply.status_code == 404
    assert "jane" not in reply.text and "Acme" not in reply.text


def test_the_team_section_needs_full_access(api: Api, runtime: Runtime, team: Team) -> None:
    narrow = mint_token(runtime, team.owner, "instances:read")
    reply = api.as_(narrow).get(f"/api/projects/{team.project}/members")
    assert reply.status_code == 403
    assert reply.json()["code"] == "INSUFFICIENT_SCOPE"


# --- POST invitations ----------------------------------------------------------------------------


def test_an_owner_invites_and_the_link_is_emailed(api: Api, runtime: Runtime, team: Team) -> None:
    before = clock.now()
    reply = api.as_(team.owner.token).post(f"/api/projects/{team.project}/invitations",
                                           json={"email": "  Dave@Example.com "})

    assert reply.status_code == 201, reply.text
    body = reply.json()
    assert set(body) == {"id", "project_id", "email", "role", "expires_at"}
    assert (body["project_id"], body["email"], body["role"]) == (team.project, "dave@example.com", "member")
    assert MILLIS.match(body["expires_at"])
    lifetime = _parse(body["expires_at"]) - before
    assert timedelta(days=7) - timedelta(seconds=5) < lifetime <= timedelta(days=7, seconds=5)
    with runtime.db.session(write=False) as session:
        message = next(m for m in mail.outbox(session) if m.to_address == "dave@example.com")
        stored = session.scalars(select(Invitation).where(Invitation.id == body["id"])).one()
    assert message.kind == "invitation"
    assert "Acme" in message.subject and "Jane Operator" in message.subject
    link = re.search(r"http://cloudlet\.test/en/invitations/(\S+)", message.body)
    assert link is not None
    token = link.group(1)
    assert len(token) >= 40
    assert stored.token_hash == digest(token)  # only the digest is kept
    assert token not in {stored.token_hash, stored.email}


def test_an_arabic_invitation_has_an_arabic_email_and_link(api: Api, runtime: Runtime, team: Team) -> None:
    reply = api.as_(team.owner.token).post(f"/api/projects/{team.project}/invitations",
                                           json={"email": "dave@example.com", "role": "owner", "locale": "ar"})
    assert reply.status_code == 201
    assert reply.json()["role"] == "owner"
    with runtime.db.session(write=False) as session:
        message = next(m for m in mail.outbox(session) if m.to_address == "dave@example.com")
    assert "http://cloudlet.test/ar/invitations/" in message.body
    assert "دعاك" in message.subject and "مالك" in message.body


def test_only_owners_invite(api: Api, team: Team) -> None:
    reply = api.as_(team.member.token).post(f"/api/projects/{team.project}/invitations",
                                            json={"email": "dave@example.com"})
    assert reply.status_code == 403
    assert reply.json()["message"] == "Only project owners can invite teammates."


def test_a_second_active_invitation_for_an_email_is_refused(api: Api, team: Team) -> None:
    url = f"/api/projects/{team.project}/invitations"
    reply = api.as_(team.owner.token).post(url, json={"email": "CAROL@example.com"})
    assert reply.status_code == 409
    assert reply.json()["message"] == "An active invitation already exists for that email."
    with clock.travel(timedelta(days=8)):  # once it expires, a new one may go out
        assert api.as_(team.owner.token).post(url, json={"email": "carol@example.com"}).status_code == 201


def test_members_cannot_be_invited_again(api: Api, team: Team) -> None:
    reply = api.as_(team.owner.token).post(f"/api/projects/{team.project}/invitations",
                                           json={"email": "bob@example.com"})
    assert reply.status_code == 422
    assert reply.json()["message"] == "That user is already a project member."


@pytest.mark.parametrize("body", [{}, {"email": "not-an-email"}, {"email": "d@example.com", "role": "admin"},
                                  {"email": "d@example.com", "locale": "fr"}])
def test_bad_invitations_are_422(api: Api, team: Team, body: dict[str, str]) -> None:
    reply = api.as_(team.owner.token).post(f"/api/projects/{team.project}/invitations", json=body)
    assert reply.status_code == 422
    assert reply.json()["errors"]


# --- DELETE members ------------------------------------------------------------------------------


def test_an_owner_removes_a_member_who_then_loses_access(api: Api, team: Team) -> None:
    reply = api.as_(team.owner.token).delete(f"/api/projects/{team.project}/members/{team.member_id}")
    assert reply.status_code == 204
    assert api.as_(team.member.token).get(f"/api/projects/{team.project}/members").status_code == 404
    assert team.project not in [p["id"] for p in api.as_(team.member.token).get("/api/me").json()["projects"]]


def test_members_cannot_remove_others(api: Api, runtime: Runtime, team: Team) -> None:
    owner_membership = api.as_(team.owner.token).get(f"/api/projects/{team.project}/members").json()["members"][0]
    reply = api.as_(team.member.token).delete(f"/api/projects/{team.project}/members/{owner_membership['id']}")
    assert reply.status_code == 403
    assert reply.json()["message"] == "Only project owners can remove members."


def test_a_member_may_leave(api: Api, team: Team) -> None:
    reply = api.as_(team.member.token).delete(f"/api/projects/{team.project}/members/{team.member_id}")
    assert reply.status_code == 204
    assert api.as_(team.member.token).get(f"/api/projects/{team.project}/members").status_code == 404


def test_the_last_owner_stays(api: Api, runtime: Runtime, team: Team) -> None:
    members = api.as_(team.owner.token).get(f"/api/projects/{team.project}/members").json()["members"]
    reply = api.as_(team.owner.token).delete(f"/api/projects/{team.project}/members/{members[0]['id']}")
    assert reply.status_code == 422
    assert reply.json()["message"] == "Cannot remove the last remaining owner."
    # with a second owner, the first may go
    dave = make_user(runtime, "dave@example.com")
    add_member(runtime, team.owner, team.project, dave, role="owner")
    assert api.as_(dave.token).delete(f"/api/projects/{team.project}/members/{members[0]['id']}").status_code == 204


def test_removing_an_unknown_member_is_404(api: Api, team: Team) -> None:
    reply = api.as_(team.owner.token).delete(f"/api/projects/{team.project}/members/999999")
    assert reply.status_code == 404


# --- DELETE invitations --------------------------------------------------------------------------


def _carol_invitation_id(api: Api, team: Team) -> int:
    page = api.as_(team.owner.token).get(f"/api/projects/{team.project}/members").json()
    return int(next(i["id"] for i in page["invitations"] if i["email"] == "carol@example.com"))


def test_an_owner_cancels_an_invitation_and_the_link_dies(api: Api, runtime: Runtime, team: Team) -> None:
    carol = make_user(runtime, "carol@example.com")
    invite_id = _carol_invitation_id(api, team)
    reply = api.as_(team.owner.token).delete(f"/api/projects/{team.project}/invitations/{invite_id}")
    assert reply.status_code == 204
    gone = api.as_(carol.token).post(f"/api/project-invitations/{team.carol_token}/accept")
    assert gone.status_code == 410
    assert gone.json()["status"] == "cancelled"


def test_members_cannot_cancel_invitations(api: Api, team: Team) -> None:
    reply = api.as_(team.member.token).delete(
        f"/api/projects/{team.project}/invitations/{_carol_invitation_id(api, team)}")
    assert reply.status_code == 403
    assert reply.json()["message"] == "Only project owners can cancel invitations."


def test_accepted_invitations_cannot_be_cancelled(api: Api, runtime: Runtime, team: Team) -> None:
    carol = make_user(runtime, "carol@example.com")
    invite_id = _carol_invitation_id(api, team)
    assert api.as_(carol.token).post(f"/api/project-invitations/{team.carol_token}/accept").status_code == 200
    reply = api.as_(team.owner.token).delete(f"/api/projects/{team.project}/invitations/{invite_id}")
    assert reply.status_code == 422
    assert reply.json()["message"] == "Accepted invitations cannot be cancelled."


# --- preview and accept --------------------------------------------------------------------------


def test_the_invited_account_previews_a_pending_invitation(api: Api, runtime: Runtime, team: Team) -> None:
    carol = make_user(runtime, "carol@example.com")
    reply = api.as_(carol.token).get(f"/api/project-invitations/{team.carol_token}")
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["status"] == "pending"
    assert body["current_user_email"] == "carol@example.com"
    invitation = body["invitation"]
    assert set(invitation) == {"id", "email", "role", "expires_at", "project", "invited_by"}
    assert invitation["project"] == {"id": team.project, "name": "Acme", "type": "team"}
    assert invitation["invited_by"] == {"id": team.owner.id, "name": "Jane Operator", "email": "jane@example.com"}
    assert MILLIS.match(invitation["expires_at"])


def test_another_account_previews_it_as_wrong_email_and_cannot_accept(api: Api, runtime: Runtime,
                                                                       team: Team) -> None:
    eve = make_user(runtime, "eve@example.com")
    preview = api.as_(eve.token).get(f"/api/project-invitations/{team.carol_token}")
    assert preview.status_code == 200
    assert preview.json()["status"] == "wrong_email"
    assert preview.json()["current_user_email"] == "eve@example.com"
    refused = api.as_(eve.token).post(f"/api/project-invitations/{team.carol_token}/accept")
    assert refused.status_code == 403
    assert refused.json()["status"] == "wrong_email"
    assert api.as_(eve.token).get(f"/api/projects/{team.project}/members").status_code == 404


def test_an_unknown_token_is_404(api: Api, team: Team) -> None:
    assert api.as_(team.member.token).get("/api/project-invitations/nope").status_code == 404
    assert api.as_(team.member.token).post("/api/project-invitations/nope/accept").status_code == 404


def test_accepting_joins_with_the_invited_role(api: Api, runtime: Runtime, team: Team) -> None:
    carol = make_user(runtime, "Carol@Example.com")
    reply = api.as_(carol.jwt).post(f"/api/project-invitations/{team.carol_token}/accept")
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["status"] == "accepted"
    assert body["project"] == {"id": team.project, "name": "Acme", "type": "team"}
    membership = body["membership"]
    assert membership["project_id"] == team.project and membership["user_id"] == carol.id
    assert membership["role"] == "member"
    page = api.as_(carol.token).get(f"/api/projects/{team.project}/members").json()
    assert page["current_user_role"] == "member"
    assert page["invitations"] == []
    # the accepted link now reads as accepted
    again = api.as_(carol.token).get(f"/api/project-invitations/{team.carol_token}")
    assert again.status_code == 410 and again.json()["status"] == "accepted"


def test_accepting_twice_is_safe_but_nobody_else_can_reuse_it(api: Api, runtime: Runtime, team: Team) -> None:
    carol = make_user(runtime, "carol@example.com")
    url = f"/api/project-invitations/{team.carol_token}/accept"
    first = api.as_(carol.token).post(url)
    second = api.as_(carol.token).post(url)
    assert first.status_code == second.status_code == 200
    assert first.json() == second.json()
    with runtime.db.session(write=False) as session:
        count = len(session.scalars(select(Membership).where(Membership.project_id == team.project,
                                                             Membership.user_id == carol.id)).all())
    assert count == 1
    eve = make_user(runtime, "eve@example.com")
    reused = api.as_(eve.token).post(url)
    assert reused.status_code == 410
    assert reused.json()["status"] == "accepted"


def test_a_removed_member_cannot_rejoin_with_the_old_link(api: Api, runtime: Runtime, team: Team) -> None:
    carol = make_user(runtime, "carol@example.com")
    url = f"/api/project-invitations/{team.carol_token}/accept"
    membership = api.as_(carol.token).post(url).json()["membership"]["id"]
    api.as_(team.owner.token).delete(f"/api/projects/{team.project}/members/{membership}")
    again = api.as_(carol.token).post(url)
    assert again.status_code == 410
    assert api.as_(carol.token).get(f"/api/projects/{team.project}/members").status_code == 404


def test_an_expired_invitation_is_gone(api: Api, runtime: Runtime, team: Team) -> None:
    carol = make_user(runtime, "carol@example.com")
    with clock.travel(timedelta(days=7, minutes=1)):
        preview = api.as_(carol.token).get(f"/api/project-invitations/{team.carol_token}")
        accept = api.as_(carol.token).post(f"/api/project-invitations/{team.carol_token}/accept")
    assert preview.status_code == accept.status_code == 410
    assert preview.json()["status"] == accept.json()["status"] == "expired"
    assert api.as_(carol.token).get(f"/api/projects/{team.project}/members").status_code == 404


def test_concurrent_accepts_make_one_membership(runtime: Runtime, team: Team) -> None:
    carol = make_user(runtime, "carol@example.com")
    token = invitation_token(runtime, "carol@example.com")
    barrier = threading.Barrier(6)
    results: list[int] = []
    errors: list[BaseException] = []

    @dataclass
    class Acting:
        user: object
        project_scope: int | None = None

    def accept() -> None:
        try:
            barrier.wait()
            with runtime.db.session() as session:
                results.append(projects.accept_invitation(session, Acting(carol.user), token).membership.id)  # type: ignore[arg-type]
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=accept) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(results) == 6 and len(set(results)) == 1
    with runtime.db.session(write=False) as session:
        count = len(session.scalars(select(Membership).where(Membership.project_id == team.project,
                                                             Membership.user_id == carol.id)).all())
    assert count == 1
