"""The cross-tenant matrix for projects: another user's objects, or another project than a token's
fence, answer 404 on every project-object endpoint of both surfaces, and nothing changes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from cloudlet.surfaces.deps import Runtime
from cloudlet.tokens import service as tokens
from cloudlet.tokens.schemas import TokenCreate
from tests.conftest import Api
from tests.helpers import Person, add_member, invite, make_team, make_user


@dataclass
class Objects:
    """One project of a tenant and the objects in it: two members and two pending invitations."""

    project: int
    members: tuple[int, int]  # membership ids (the primary surface addresses members by these)
    member_users: tuple[int, int]  # user ids (Shardlyn addresses members by these)
    invitations: tuple[int, int]
    tokens: tuple[str, str]


@dataclass
class Tenant:
    """A user with a personal and a team project, each furnished with members and invitations."""

    person: Person
    personal: Objects
    team: Objects


def _furnish(api: Api, runtime: Runtime, owner: Person, project: int, tag: str) -> Objects:
    helpers = [make_user(runtime, f"{tag}-{n}@example.com", name=f"{tag} {n}") for n in (1, 2)]
    members = tuple(add_member(runtime, owner, project, h) for h in helpers)
    emails = (f"{tag}-invited-1@example.com", f"{tag}-invited-2@example.com")
    invite_tokens = tuple(invite(runtime, owner, project, e) for e in emails)
    page = api.as_(owner.token).get(f"/api/projects/{project}/members").json()
    invitations = tuple(i["id"] for i in page["invitations"])
    # a granted permission, so the permission endpoints have something to reveal or remove
    grant = api.as_(owner.token).post(f"/v1/organizations/{project}/members/{helpers[1].id}/permissions",
                                      json={"key": "members:manage"})
    assert grant.status_code == 200, grant.text
    return Objects(project, (members[0], members[1]), (helpers[0].id, helpers[1].id),
                   (invitations[0], invitations[1]), (invite_tokens[0], invite_tokens[1]))


def _tenant(api: Api, runtime: Runtime, tag: str) -> Tenant:
    person = make_user(runtime, f"{tag}@example.com", name=f"{tag} owner")
    team = make_team(runtime, person, f"{tag} team")
    return Tenant(person, _furnish(api, runtime, person, person.project_id, f"{tag}-p"),
                  _furnish(api, runtime, person, team, f"{tag}-t"))


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    # signed-in sessions (JWTs) walk the whole matrix, far past the default 60 requests a minute
    return {"token_rate_per_minute": 100_000, "token_rate_per_hour": 1_000_000}


@pytest.fixture
def tenants(api: Api, runtime: Runtime) -> tuple[Tenant, Tenant]:
    return _tenant(api, runtime, "alice"), _tenant(api, runtime, "bruno")


Call = tuple[str, str, dict[str, Any] | None]


def calls(objects: Objects, own: int | None = None) -> list[Call]:
    """Every project-object endpoint aimed at `objects`; with `own`, the foreign objects inside the
    caller's own project (so an id from another project is not accepted in a project it is not in)."""
    p = objects.project
    m1 = objects.members[0]
    u2 = objects.member_users[1]
    i1, i2 = objects.invitations
    result: list[Call] = [
        ("GET", f"/api/projects/{p}/members", None),
        ("POST", f"/api/projects/{p}/invitations", {"email": "stranger-invite@example.com"}),
        ("DELETE", f"/api/projects/{p}/members/{m1}", None),
        ("DELETE", f"/api/projects/{p}/invitations/{i1}", None),
        ("GET", f"/v1/organizations/{p}", None),
        ("PUT", f"/v1/organizations/{p}", {"name": "taken over"}),
        ("GET", f"/v1/organizations/{p}/members", None),
        ("POST", f"/v1/organizations/{p}/members/invite", {"email": "stranger-invite@example.com"}),
        ("PUT", f"/v1/organizations/{p}/members/{u2}/role", {"role": "owner"}),
        ("GET", f"/v1/organizations/{p}/members/{u2}/permissions", None),
        ("POST", f"/v1/organizations/{p}/members/{u2}/permissions", {"key": "wallet:topup"}),
        ("DELETE", f"/v1/organizations/{p}/members/{u2}/permissions/members:manage", None),
        ("GET", f"/v1/organizations/{p}/invites", None),
        ("DELETE", f"/v1/organizations/{p}/invites/{i2}", None),
        ("DELETE", f"/v1/organizations/{p}/members/{u2}", None),
        ("DELETE", f"/v1/organizations/{p}", None),
    ]
    if own is not None:
        result += [
            ("DELETE", f"/api/projects/{own}/members/{m1}", None),
            ("DELETE", f"/api/projects/{own}/invitations/{i1}", None),
            ("PUT", f"/v1/organizations/{own}/members/{u2}/role", {"role": "owner"}),
            ("GET", f"/v1/organizations/{own}/members/{u2}/permissions", None),
            ("POST", f"/v1/organizations/{own}/members/{u2}/permissions", {"key": "wallet:topup"}),
            ("DELETE", f"/v1/organizations/{own}/members/{u2}/permissions/members:manage", None),
            ("DELETE", f"/v1/organizations/{own}/invites/{i2}", None),
            ("DELETE", f"/v1/organizations/{own}/members/{u2}", None),
        ]
    return result


def _leaks(api: Api, credential: str, matrix: list[Call], secrets: list[str]) -> list[str]:
    problems = []
    for method, path, body in matrix:
        reply = api.as_(credential).request(method, path, json=body)
        if reply.status_code != 404:
            problems.append(f"{method} {path} -> {reply.status_code} {reply.text[:200]}")
        elif any(s in reply.text for s in secrets):
            problems.append(f"{method} {path} -> 404 that names the object: {reply.text[:200]}")
    return problems


def _snapshot(api: Api, owner: Person, objects: Objects) -> dict[str, Any]:
    as_owner = api.as_(owner.token)
    p = objects.project
    return {
        "team": as_owner.get(f"/api/projects/{p}/members").json(),
        "org": as_owner.get(f"/v1/organizations/{p}").json(),
        "grants": as_owner.get(f"/v1/organizations/{p}/members/{objects.member_users[1]}/permissions").json(),
    }


def test_another_users_full_access_token_gets_404_everywhere(api: Api, tenants: tuple[Tenant, Tenant]) -> None:
    alice, bruno = tenants
    for victim, intruder in ((alice, bruno), (bruno, alice)):
        for objects in (victim.personal, victim.team):
            before = _snapshot(api, victim.person, objects)
            secrets = [victim.person.email, "team", "invited"]
            for credential in (intruder.person.token, intruder.person.jwt):
                matrix = calls(objects, own=intruder.team.project) + calls(objects, own=intruder.personal.project)
                assert _leaks(api, credential, matrix, secrets) == []
            assert _snapshot(api, victim.person, objects) == before


def test_invitation_tokens_of_others_do_not_make_strangers_members(api: Api, tenants: tuple[Tenant, Tenant]) -> None:
    alice, bruno = tenants
    accepted = api.as_(bruno.person.token).post(f"/api/project-invitations/{alice.team.tokens[0]}/accept")
    assert accepted.status_code == 403
    shardlyn = api.as_(bruno.person.token).post(f"/v1/invites/{alice.team.tokens[0]}/accept")
    assert shardlyn.status_code == 403
    assert api.as_(bruno.person.token).get(f"/api/projects/{alice.team.project}/members").status_code == 404


def test_a_token_fenced_to_one_project_gets_404_for_the_users_other_project(
        api: Api, runtime: Runtime, tenants: tuple[Tenant, Tenant]) -> None:
    alice, _ = tenants
    fences = [(alice.team.project, alice.personal), (alice.personal.project, alice.team)]
    for fence, other in fences:
        with runtime.db.session() as session:
            fenced = tokens.mint(session, user_id=alice.person.id, project_id=fence, data=TokenCreate(name="fenced"),
                                 caller_abilities=["*"], default_per_minute=10_000,
                                 default_per_hour=100_000).plaintext
        before = _snapshot(api, alice.person, other)
        assert _leaks(api, fenced, calls(other), ["invited"]) == []
        for token in other.tokens:  # joining another project is beyond a fenced token, too
            assert api.as_(fenced).get(f"/api/project-invitations/{token}").status_code == 404
        assert _snapshot(api, alice.person, other) == before
        # inside its fence the token works
        assert api.as_(fenced).get(f"/api/projects/{fence}/members").status_code == 200
        assert api.as_(fenced).get(f"/v1/organizations/{fence}/members").status_code == 200


def test_the_owner_reaches_every_endpoint_of_the_matrix(api: Api, tenants: tuple[Tenant, Tenant]) -> None:
    """The matrix's paths are real: for the rightful owner none of them is a 404."""
    alice, _ = tenants
    for method, path, body in calls(alice.team):
        reply = api.as_(alice.person.token).request(method, path, json=body)
        assert reply.status_code != 404, f"{method} {path} -> {reply.text}"
