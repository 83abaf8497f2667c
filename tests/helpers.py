"""Making users, tokens and sessions directly through the services, for tests that need them."""

from __future__ import annotations

import re
import socket
from dataclasses import dataclass

from cloudlet.auth import service as auth
from cloudlet.auth.models import User
from cloudlet.billing import service as billing
from cloudlet.mail import service as mail
from cloudlet.projects import service as projects
from cloudlet.projects.models import Role
from cloudlet.projects.schemas import InvitationCreate, ProjectCreate
from cloudlet.surfaces.deps import Runtime
from cloudlet.tokens import service as tokens
from cloudlet.tokens.schemas import TokenCreate

PASSWORD = "correct-horse-battery-9"


@dataclass
class Person:
    """A test user with a ready access JWT and a full-access API token."""

    user: User
    jwt: str
    token: str
    project_id: int

    @property
    def id(self) -> int:
        """The user's id."""
        return self.user.id

    @property
    def email(self) -> str:
        """The user's email."""
        return self.user.email


def make_user(runtime: Runtime, email: str, *, admin: bool = False, name: str = "") -> Person:
    """A user with a personal project, an access JWT and a `*` token."""
    with runtime.db.session() as session:
        user = auth.create_user(session, runtime.settings, email=email, password=PASSWORD,
                                name=name or email.split("@")[0], is_admin=admin)
        minted = tokens.mint(session, user_id=user.id, project_id=None, data=TokenCreate(name="test"),
                             caller_abilities=["*"], default_per_minute=10_000, default_per_hour=100_000)
        project_id = user.personal_project_id
    return Person(user=user, jwt=auth.issue_access_token(runtime.settings, user), token=minted.plaintext,
                  project_id=project_id)


def mint_token(runtime: Runtime, person: Person, *abilities: str, **fields: object) -> str:
    """A token of the person's with exactly these abilities (and other TokenCreate fields)."""
    with runtime.db.session() as session:
        minted = tokens.mint(session, user_id=person.id, project_id=None,
                             data=TokenCreate(name="scoped", abilities=list(abilities), **fields),  # type: ignore[arg-type]
                             caller_abilities=["*"], default_per_minute=10_000, default_per_hour=100_000)
    return minted.plaintext


@dataclass
class _Acting:
    """What the projects service needs to know of whoever acts (a Caller, in a request)."""

    user: User
    project_scope: int | None = None

    @property
    def user_id(self) -> int:
        return self.user.id


def make_team(runtime: Runtime, owner: Person, name: str = "team") -> int:
    """A team project owned by the person; returns its id."""
    with runtime.db.session() as session:
        return billing.create_team_project(session, runtime.settings, _Acting(owner.user), ProjectCreate(name=name)).id


def invitation_token(runtime: Runtime, email: str) -> str:
    """The token in the newest invitation email sent to this address."""
    with runtime.db.session(write=False) as session:
        for message in mail.outbox(session, limit=500):
            found = re.search(r"/invitations/(\S+)", message.body)
            if message.to_address == email and message.kind == "invitation" and found:
                return found.group(1)
    raise AssertionError(f"no invitation was mailed to {email}")


def invite(runtime: Runtime, owner: Person, project_id: int, email: str, role: str = "member") -> str:
    """Invite an address to the project as the owner; returns the emailed token."""
    with runtime.db.session() as session:
        projects.invite(session, runtime.settings, runtime.limiter, _Acting(owner.user), project_id,
                        InvitationCreate(email=email, role=Role(role)))
    return invitation_token(runtime, email)


def add_member(runtime: Runtime, owner: Person, project_id: int, person: Person, role: str = "member") -> int:
    """Invite the person and accept for them, as the API would; returns the membership id."""
    token = invite(runtime, owner, project_id, person.email, role)
    with runtime.db.session() as session:
        return projects.accept_invitation(session, _Acting(person.user), token).membership.id


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
