"""Sign-up and invitations cannot be used to flood, probe or forge (issue 9, findings 4.6 and 4.7).

Sign-up is rate limited per client address and answers the same whether or not the email has an
account; names that end up in invitation emails are one printable line; invitations are rate
limited per inviter and per project.
"""

from __future__ import annotations

import pytest

from cloudlet.mail import service as mail
from cloudlet.surfaces.deps import Runtime
from tests.conftest import Api
from tests.helpers import PASSWORD, make_team, make_user


class TestSignUpLimit:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, object]:
        return {"signup_rate_per_address": "3/hour"}

    def test_sign_ups_from_one_address_are_limited_whether_or_not_the_email_exists(self, api: Api,
                                                                                   runtime: Runtime) -> None:
        make_user(runtime, "taken@example.com")
        emails = ["a@example.com", "taken@example.com", "b@example.com"]
        answers = [api.post("/v1/auth/register", json={"email": e, "password": PASSWORD}) for e in emails]
        assert [a.status_code for a in answers] == [201, 201, 201]
        assert len({a.text for a in answers}) == 1  # the taken email answered like the free ones
        refused = api.post("/v1/auth/register", json={"email": "c@example.com", "password": PASSWORD})
        assert refused.status_code == 429
        assert refused.json()["error"].startswith("Too many sign-ups from this address.")
        assert int(refused.headers["Retry-After"]) > 0
        # nothing was made for the refused one: it cannot sign in
        login = api.post("/v1/auth/login", json={"email": "c@example.com", "password": PASSWORD})
        assert login.status_code == 401


def test_a_taken_email_is_told_to_its_owner_not_to_the_caller(api: Api, runtime: Runtime) -> None:
    make_user(runtime, "jane@example.com", name="Jane")
    free = api.post("/v1/auth/register", json={"email": "new@example.com", "password": PASSWORD})
    taken = api.post("/v1/auth/register", json={"email": "JANE@example.com", "password": PASSWORD})
    assert (taken.status_code, taken.json()) == (free.status_code, free.json()) == (201, taken.json())
    with runtime.db.session(write=False) as session:
        sent = {m.to_address: m for m in mail.outbox(session, limit=10)}
    assert sent["jane@example.com"].kind == "signup_existing"
    assert "already has one" in sent["jane@example.com"].body
    assert sent["new@example.com"].kind == "signup"
    # the policy's own 4xx comes before anything that could tell accounts apart
    short = api.post("/v1/auth/register", json={"email": "jane@example.com", "password": "short"})
    assert short.status_code == 400 and short.json() == {"error": "The password must be at least 8 characters."}


@pytest.mark.parametrize("name", ["Acme\nDear user, click http://evil.example", "Acme\r\nBcc: x@example.com",
                                  "Acme\u2028Evil", "Acme\u202eEvil", "Acme\x00", "x" * 201, "   "])
def test_organization_names_are_one_printable_line(api: Api, runtime: Runtime, name: str) -> None:
    jane = make_user(runtime, "jane@example.com")
    made = api.as_(jane.jwt).post("/v1/organizations", json={"name": name})
    assert made.status_code == 400, made.text
    assert "name" in made.json()["error"]
    personal = api.as_(jane.jwt).get("/v1/organizations").json()[0]
    renamed = api.as_(jane.jwt).put(f"/v1/organizations/{personal['id']}", json={"name": name})
    assert renamed.status_code == 400
    assert [o["name"] for o in api.as_(jane.jwt).get("/v1/organizations").json()] == ["default"]


def test_names_are_trimmed_and_keep_any_script(api: Api, runtime: Runtime) -> None:
    jane = make_user(runtime, "jane@example.com")
    made = api.as_(jane.jwt).post("/v1/organizations", json={"name": "  شركة Acme ✓  "})
    assert made.status_code == 201 and made.json()["name"] == "شركة Acme ✓"


def test_a_person_name_with_a_line_break_is_refused_at_sign_up(api: Api) -> None:
    reply = api.post("/v1/auth/register", json={"email": "a@example.com", "password": PASSWORD,
                                                "name": "Jane\nSubject: hello"})
    assert reply.status_code == 400 and "name" in reply.json()["error"]


def test_the_invitation_email_carries_the_project_name_on_one_line(api: Api, runtime: Runtime) -> None:
    jane = make_user(runtime, "jane@example.com", name="Jane")
    team = api.as_(jane.jwt).post("/v1/organizations", json={"name": "  Acme  "}).json()["id"]
    sent = api.as_(jane.jwt).post(f"/v1/organizations/{team}/members/invite", json={"email": "carol@example.com"})
    assert sent.status_code == 201, sent.text
    with runtime.db.session(write=False) as session:
        [message] = [m for m in mail.outbox(session, limit=10) if m.kind == "invitation"]
    assert message.subject == "Jane invited you to join Acme"


class TestInvitationLimits:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, object]:
        return {"invitation_rate_per_inviter": "4/hour", "invitation_rate_per_project": "2/hour"}

    def test_one_project_sends_a_bounded_number_of_invitations(self, api: Api, runtime: Runtime) -> None:
        jane = make_user(runtime, "jane@example.com")
        team = make_team(runtime, jane, "Acme")
        url = f"/api/projects/{team}/invitations"
        for n in range(2):
            assert api.as_(jane.jwt).post(url, json={"email": f"p{n}@example.com"}).status_code == 201
        refused = api.as_(jane.jwt).post(url, json={"email": "p2@example.com"})
        assert refused.status_code == 429, refused.text
        assert refused.json()["code"] == "RATE_LIMIT_EXCEEDED" and "Too many invitations" in refused.json()["message"]
        assert "Retry-After" in refused.headers
        # on every surface, and no invitation was made for the refused one
        shardlyn = api.as_(jane.jwt).post(f"/v1/organizations/{team}/members/invite", json={"email": "p3@example.com"})
        assert shardlyn.status_code == 429 and "Too many invitations" in shardlyn.json()["error"]
        pending = api.as_(jane.jwt).get(f"/v1/organizations/{team}/invites").json()
        assert sorted(i["email"] for i in pending) == ["p0@example.com", "p1@example.com"]

    def test_one_inviter_sends_a_bounded_number_across_projects(self, api: Api, runtime: Runtime) -> None:
        jane = make_user(runtime, "jane@example.com")
        teams = [make_team(runtime, jane, f"T{n}") for n in range(3)]
        codes = [api.as_(jane.jwt).post(f"/api/projects/{team}/invitations",
                                        json={"email": f"{team}-{n}@example.com"}).status_code
                 for team in teams for n in range(2)]
        assert codes == [201, 201, 201, 201, 429, 429]
        # another owner still invites to a project that has room
        john = make_user(runtime, "john@example.com")
        own = make_team(runtime, john, "J")
        assert api.as_(john.jwt).post(f"/api/projects/{own}/invitations",
                                      json={"email": "x@example.com"}).status_code == 201
