"""Making users, tokens and sessions directly through the services, for tests that need them."""

from __future__ import annotations

from dataclasses import dataclass

from cloudlet.auth import service as auth
from cloudlet.auth.models import User
from cloudlet.projects import service as projects
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
        project_id = projects.personal_project_id(session, user.id)
    return Person(user=user, jwt=auth.issue_access_token(runtime.settings, user), token=minted.plaintext,
                  project_id=project_id)


def mint_token(runtime: Runtime, person: Person, *abilities: str, **fields: object) -> str:
    """A token of the person's with exactly these abilities (and other TokenCreate fields)."""
    with runtime.db.session() as session:
        minted = tokens.mint(session, user_id=person.id, project_id=None,
                             data=TokenCreate(name="scoped", abilities=list(abilities), **fields),  # type: ignore[arg-type]
                             caller_abilities=["*"], default_per_minute=10_000, default_per_hour=100_000)
    return minted.plaintext
