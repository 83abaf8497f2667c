"""Who is calling: a credential (API token or access JWT) resolved to a user, abilities and projects."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy.orm import Session

from cloudlet.auth import service
from cloudlet.auth.models import User, UserStatus
from cloudlet.config import Settings
from cloudlet.kit.errors import Forbidden, NotFound, Unauthenticated
from cloudlet.kit.fresh import FreshCache
from cloudlet.kit.ids import parse_id
from cloudlet.tokens import abilities
from cloudlet.tokens import service as tokens
from cloudlet.tokens.abilities import Ability
from cloudlet.tokens.models import ApiToken


@dataclass
class Caller:
    """The authenticated party of one request.

    A caller found in the credential cache carries the facts authentication needs and nothing read
    from the database: the user row (and the token row) is loaded from the request's session when an
    endpoint first asks for it, so a request that needs neither costs no query to authenticate, nor a
    session: `sessions` gives the request's session, opening it if nothing has yet.
    """

    user_id: int
    token_facts: tokens.TokenFacts | None  # None for a signed-in session (access JWT)
    abilities: list[str]
    ip: str | None
    admin_user: bool  # the user's administrator flag (is_admin also asks for every ability)
    sessions: Callable[[], Session] = field(repr=False, compare=False)
    _user: User | None = field(default=None, repr=False, compare=False)

    @property
    def user(self) -> User:
        """The user row, read from the request's session on first use."""
        if self._user is None:
            user = self.sessions().get(User, self.user_id)
            if user is None:  # deleted since its credential was cached
                raise Unauthenticated("API key is invalid or malformed.", code="INVALID_API_KEY")
            self._user = user
        return self._user

    @property
    def loaded_user(self) -> User | None:
        """The user row if an endpoint has loaded it already (None otherwise; never a query)."""
        return self._user

    @property
    def token(self) -> ApiToken | None:
        """The token row (None for a signed-in session), read from the request's session on first use."""
        if self.token_facts is None:
            return None
        token = self.sessions().get(ApiToken, self.token_facts.id)
        if token is None:  # revoked since it was cached
            raise Unauthenticated("API key is invalid or malformed.", code="INVALID_API_KEY")
        return token

    @property
    def is_session(self) -> bool:
        """Whether the caller signed in (JWT) rather than presenting an API token."""
        return self.token_facts is None

    @property
    def is_admin(self) -> bool:
        """Whether the caller may use the operator endpoints."""
        return self.admin_user and abilities.grants(self.abilities, Ability.ALL)

    def can(self, ability: Ability) -> bool:
        """Whether the credential carries the ability."""
        return abilities.grants(self.abilities, ability)

    @property
    def project_id(self) -> int:
        """The project the caller acts in when a request names none: the token's, else the personal one."""
        if self.token_facts is not None and self.token_facts.project_id is not None:
            return self.token_facts.project_id
        if self.user.personal_project_id is None:
            raise NotFound("project")
        return self.user.personal_project_id

    @property
    def project_scope(self) -> int | None:
        """The one project a token is fenced to, if any."""
        return self.token_facts.project_id if self.token_facts is not None else None

    @property
    def rate_key(self) -> str:
        """The key this caller's requests are counted under."""
        return f"token:{self.token_facts.id}" if self.token_facts is not None else f"user:{self.user_id}"


def looks_like_jwt(credential: str) -> bool:
    """Whether a bearer credential is a JWT rather than an API token."""
    return credential.startswith("eyJ") and credential.count(".") == 2


@dataclass(frozen=True)
class KnownToken:
    """A token and what authentication needs of its owner."""

    facts: tokens.TokenFacts
    suspended: bool
    admin_user: bool


# API tokens this process resolved in the last second, by their secret's digest. Only valid tokens are
# kept: a wrong secret always asks the database.
CredentialCache = FreshCache[str, KnownToken]


def recall(cache: CredentialCache | None, sessions: Callable[[], Session], credential: str | None,
           ip: str | None) -> Caller | None:
    """The caller an API token names, from the cache and without any query; None when the cache cannot say.

    `sessions` gives the session the caller's rows are read from, if an endpoint asks for them.

    Raises as `authenticate` does for a cached token that may not be used now (switched off, expired,
    from an address outside its allow-list, of a suspended account).
    """
    if cache is None or not credential or looks_like_jwt(credential):
        return None
    key = tokens.lookup_key(credential)
    known = cache.get(key) if key is not None else None
    if known is None:
        return None
    return _token_caller(sessions, known, credential, ip)


def _token_caller(sessions: Callable[[], Session], known: KnownToken, credential: str, ip: str | None,
                  user: User | None = None) -> Caller:
    facts = tokens.check(known.facts, credential, ip)
    if known.suspended:
        raise Forbidden("This account is suspended.", code="ACCOUNT_SUSPENDED")
    return Caller(user_id=facts.user_id, token_facts=facts, abilities=list(facts.abilities), ip=ip,
                  admin_user=known.admin_user, sessions=sessions, _user=user)


def authenticate(session: Session, settings: Settings, credential: str | None, ip: str | None,
                 cache: CredentialCache | None = None) -> Caller:
    """Resolve a bearer credential to a Caller, or raise Unauthenticated / Forbidden with a code.

    An API token found here is kept in the cache, when one is given, for the next requests.
    """
    if not credential:
        raise Unauthenticated("No API key provided.", code="NO_API_KEY")
    if not looks_like_jwt(credential):
        ticket = cache.ticket() if cache is not None else None  # before the query: see FreshCache.put
        token = tokens.find(session, credential)
        user = session.get(User, token.user_id) if token is not None else None  # loaded with the token
        if token is None or user is None:
            raise Unauthenticated("API key is invalid or malformed.", code="INVALID_API_KEY")
        known = KnownToken(tokens.TokenFacts.of(token), suspended=user.status is UserStatus.SUSPENDED,
                           admin_user=user.is_admin)
        key = tokens.lookup_key(credential)
        if cache is not None and ticket is not None and key is not None:
            cache.put(key, known, ticket)
        return _token_caller(lambda: session, known, credential, ip, user)
    claims = service.decode_jwt(settings, credential, kind="access")
    user_id = parse_id(str(claims["sub"]))  # a subject that is no id (23 digits, "²") names no user
    jwt_user = session.get(User, user_id) if user_id is not None else None
    if jwt_user is None:
        raise Unauthenticated("The token is invalid.", code="INVALID_TOKEN")
    if not service.access_token_current(session, claims, jwt_user):
        raise Unauthenticated("The token has been revoked; sign in again.", code="TOKEN_REVOKED")
    if jwt_user.status is UserStatus.SUSPENDED:
        raise Forbidden("This account is suspended.", code="ACCOUNT_SUSPENDED")
    return Caller(user_id=jwt_user.id, token_facts=None, abilities=[Ability.ALL.value], ip=ip,
                  admin_user=jwt_user.is_admin, sessions=lambda: session, _user=jwt_user)
