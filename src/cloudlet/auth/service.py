"""Passwords, access tokens and account flows (bootstrap, register, login, refresh, MFA, resets)."""

from __future__ import annotations

from datetime import timedelta
from functools import lru_cache
from typing import Any

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy.orm import Session

from cloudlet.auth import repository
from cloudlet.auth.models import User
from cloudlet.config import Settings
from cloudlet.kit import clock
from cloudlet.kit.errors import Conflict, Invalid, Unauthenticated
from cloudlet.kit.ids import new_secret
from cloudlet.projects import service as projects

ISSUER = "cloudlet"
AUDIENCE = "cloudlet-api"
ALGORITHM = "HS256"  # pinned: a token naming any other algorithm is refused


@lru_cache(maxsize=4)
def _hasher(time_cost: int, memory_kib: int) -> PasswordHasher:
    return PasswordHasher(time_cost=time_cost, memory_cost=memory_kib)


def hash_password(settings: Settings, password: str) -> str:
    """An argon2id hash of the password."""
    return _hasher(settings.argon2_time_cost, settings.argon2_memory_kib).hash(password)


def password_matches(settings: Settings, user: User, password: str) -> bool:
    """Whether the password is the user's; always False for an account without one."""
    if not user.password_hash:
        return False
    try:
        return _hasher(settings.argon2_time_cost, settings.argon2_memory_kib).verify(user.password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def encode_jwt(settings: Settings, *, subject: int, kind: str, lifetime: timedelta,
               extra: dict[str, Any] | None = None) -> str:
    """Sign a short-lived JWT of the given kind ("access", "mfa_challenge", ...) for a user id."""
    now = clock.now()
    payload: dict[str, Any] = {
        "iss": ISSUER, "aud": AUDIENCE, "sub": str(subject), "typ": kind,
        "iat": int(now.timestamp()), "exp": int((now + lifetime).timestamp()), "jti": new_secret(9),
    }
    payload.update(extra or {})
    return jwt.encode(payload, settings.jwt_secret, algorithm=ALGORITHM)


def decode_jwt(settings: Settings, token: str, *, kind: str) -> dict[str, Any]:
    """The claims of a JWT of the given kind, checked for signature, algorithm, iss, aud and expiry."""
    try:
        claims: dict[str, Any] = jwt.decode(
            token, settings.jwt_secret, algorithms=[ALGORITHM], audience=AUDIENCE, issuer=ISSUER,
            # expiry is compared with kit.clock below, so that tests can move time
            options={"require": ["exp", "iat", "sub", "iss", "aud"], "verify_exp": False, "verify_iat": False},
        )
    except jwt.PyJWTError:
        raise Unauthenticated("The token is invalid.", code="INVALID_TOKEN") from None
    if claims.get("typ") != kind:
        raise Unauthenticated("The token is invalid.", code="INVALID_TOKEN")
    if int(claims["exp"]) <= clock.now().timestamp():
        raise Unauthenticated("The token has expired.", code="TOKEN_EXPIRED")
    return claims


def issue_access_token(settings: Settings, user: User) -> str:
    """A 15-minute (by default) access JWT for the user."""
    return encode_jwt(settings, subject=user.id, kind="access",
                      lifetime=timedelta(minutes=settings.access_token_minutes))


def normalize_email(email: str) -> str:
    """The form in which emails are stored and compared."""
    return email.strip().lower()


def check_password_policy(settings: Settings, password: str, field: str = "password") -> None:
    """Refuse passwords that are too short, too long for argon2 input sanity, or letter/digit-free."""
    if len(password) < settings.password_min_length:
        raise Invalid(field, f"The password must be at least {settings.password_min_length} characters.",
                      code="PASSWORD_TOO_SHORT")
    if len(password) > 256:
        raise Invalid(field, "The password must not exceed 256 characters.", code="PASSWORD_TOO_LONG")


def create_user(session: Session, settings: Settings, *, email: str, password: str | None, name: str = "",
                is_admin: bool = False) -> User:
    """Create an account and its personal project; the email must be free."""
    address = normalize_email(email)
    if repository.find_by_email(session, address) is not None:
        raise Conflict("An account with this email already exists.", code="EMAIL_TAKEN")
    if password is not None:
        check_password_policy(settings, password)
    user = repository.insert(session, User(
        email=address, name=name.strip(), is_admin=is_admin,
        password_hash=hash_password(settings, password) if password is not None else None,
    ))
    projects.create_personal_project(session, user.id)
    return user
