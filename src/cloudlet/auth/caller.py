"""Who is calling: a credential (API token or access JWT) resolved to a user, abilities and projects."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from cloudlet.auth import service
from cloudlet.auth.models import User, UserStatus
from cloudlet.config import Settings
from cloudlet.kit.errors import Forbidden, NotFound, Unauthenticated
from cloudlet.tokens import abilities
from cloudlet.tokens import service as tokens
from cloudlet.tokens.abilities import Ability
from cloudlet.tokens.models import ApiToken


@dataclass
class Caller:
    """The authenticated party of one request."""

    user: User
    token: ApiToken | None  # None for a signed-in session (access JWT)
    abilities: list[str]
    ip: str | None

    @property
    def user_id(self) -> int:
        """The user's id."""
        return self.user.id

    @property
    def is_session(self) -> bool:
        """Whether the caller signed in (JWT) rather than presenting an API token."""
        return self.token is None

    @property
    def is_admin(self) -> bool:
        """Whether the caller may use the operator endpoints."""
        return self.user.is_admin and abilities.grants(self.abilities, Ability.ALL)

    def can(self, ability: Ability) -> bool:
        """Whether the credential carries the ability."""
        return abilities.grants(self.abilities, ability)

    @property
    def project_id(self) -> int:
        """The project the caller acts in when a request names none: the token's, else the personal one."""
        if self.token is not None and self.token.project_id is not None:
            return self.token.project_id
        if self.user.personal_project_id is None:
            raise NotFound("project")
        return self.user.personal_project_id

    @property
    def project_scope(self) -> int | None:
        """The one project a token is fenced to, if any."""
        return self.token.project_id if self.token is not None else None

    @property
    def rate_key(self) -> str:
        """The key this caller's requests are counted under."""
        return f"token:{self.token.id}" if self.token is not None else f"user:{self.user.id}"


def looks_like_jwt(credential: str) -> bool:
    """Whether a bearer credential is a JWT rather than an API token."""
    return credential.startswith("eyJ") and credential.count(".") == 2


def authenticate(session: Session, settings: Settings, credential: str | None, ip: str | None) -> Caller:
    """Resolve a bearer credential to a Caller, or raise Unauthenticated / Forbidden with a code."""
    if not credential:
        raise Unauthenticated("No API key provided.", code="NO_API_KEY")
    token: ApiToken | None = None
    if looks_like_jwt(credential):
        claims = service.decode_jwt(settings, credential, kind="access")
        user = session.get(User, int(claims["sub"]))
        held = [Ability.ALL.value]
        if user is None:
            raise Unauthenticated("The token is invalid.", code="INVALID_TOKEN")
    else:
        token = tokens.verify(session, credential, ip)
        user = session.get(User, token.user_id)
        held = list(token.abilities)
        if user is None:
            raise Unauthenticated("API key is invalid or malformed.", code="INVALID_API_KEY")
    if user.status is UserStatus.SUSPENDED:
        raise Forbidden("This account is suspended.", code="ACCOUNT_SUSPENDED")
    return Caller(user=user, token=token, abilities=held, ip=ip)
