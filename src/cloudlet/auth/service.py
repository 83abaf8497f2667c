"""Passwords, access tokens and account flows (bootstrap, register, login, refresh, MFA, resets)."""

from __future__ import annotations

import contextlib
import hmac
import re
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

import jwt
import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cloudlet.auth import github, repository
from cloudlet.auth.models import PasswordReset, RefreshToken, User, UserStatus
from cloudlet.auth.schemas import (
    MfaEnrollment,
    MfaRequired,
    Registration,
    TokenPair,
    UserCreate,
    UserRead,
)
from cloudlet.billing import service as billing
from cloudlet.config import Settings
from cloudlet.kit import clock
from cloudlet.kit.errors import Conflict, Forbidden, Invalid, NotFound, RateLimited, Unauthenticated
from cloudlet.kit.ids import digest, new_secret, parse_id
from cloudlet.kit.pagination import Page
from cloudlet.kit.ratelimit import RateLimiter, rule
from cloudlet.kit.secretbox import SecretBox
from cloudlet.mail import service as mail
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


def issue_access_token(settings: Settings, user: User, *, family: str | None = None) -> str:
    """A 15-minute (by default) access JWT for the user, naming the session (refresh family) it belongs to."""
    extra: dict[str, Any] = {"epoch": user.access_epoch or 0}
    if family is not None:
        extra["sid"] = family
    return encode_jwt(settings, subject=user.id, kind="access",
                      lifetime=timedelta(minutes=settings.access_token_minutes), extra=extra)


def access_token_current(session: Session, claims: dict[str, Any], user: User) -> bool:
    """Whether an access JWT still stands: issued since the user last signed out, or its session lives on.

    The epoch comes with the user row, so the usual case costs no query; only a token older than the
    user's last sign-out (for at most its 15 minutes) asks whether its own session was the one ended.
    """
    if claims.get("epoch", 0) == user.access_epoch:
        return True
    family = claims.get("sid")
    return isinstance(family, str) and repository.family_active(session, user.id, family)


def normalize_email(email: str) -> str:
    """The form in which emails are stored and compared."""
    return email.strip().lower()


def check_password_policy(settings: Settings, password: str, field: str = "password") -> None:
    """Refuse passwords shorter than the configured minimum or longer than 256 characters."""
    if len(password) < settings.password_min_length:
        raise Invalid(field, f"The password must be at least {settings.password_min_length} characters.",
                      code="PASSWORD_TOO_SHORT")
    if len(password) > 256:
        raise Invalid(field, "The password must not exceed 256 characters.", code="PASSWORD_TOO_LONG")


def create_user(session: Session, settings: Settings, *, email: str, password: str | None, name: str = "",
                is_admin: bool = False) -> User:
    """Create an account, its personal project and the project's wallets; the email must be free."""
    address = normalize_email(email)
    if repository.find_by_email(session, address) is not None:
        raise Conflict("An account with this email already exists.", code="EMAIL_TAKEN")
    if password is not None:
        check_password_policy(settings, password)
    user = repository.insert(session, User(
        email=address, name=name.strip(), is_admin=is_admin,
        password_hash=hash_password(settings, password) if password is not None else None,
    ))
    user.personal_project_id = projects.create_personal_project(session, user.id).id
    billing.open_wallets(session, settings, user.personal_project_id)
    return user


# --- sessions ------------------------------------------------------------------------------------

BOOTSTRAP_FLAG = "bootstrapped"
BAD_CREDENTIALS = "Invalid email or password."
SignIn = TokenPair | MfaRequired


class RefreshTokenReused(Unauthenticated):
    """A spent refresh token came back: its family is to be revoked, in a transaction that survives this error."""

    def __init__(self, family: str, user_id: int) -> None:
        super().__init__("The refresh token was already used; every session it belonged to is now revoked.",
                         code="REFRESH_TOKEN_REUSED")
        self.family, self.user_id = family, user_id


def issue_session(session: Session, settings: Settings, user: User, *, family: str | None = None) -> TokenPair:
    """An access JWT and a fresh refresh token, in a new family or continuing the given one."""
    secret = new_secret(32)
    family = family or new_secret(16)
    repository.insert_refresh_token(session, RefreshToken(
        user_id=user.id, family=family, token_hash=digest(secret),
        expires_at=clock.now() + timedelta(days=settings.refresh_token_days),
    ))
    return TokenPair(access_token=issue_access_token(settings, user, family=family), refresh_token=secret,
                     expires_in=settings.access_token_minutes * 60, user_id=user.id)


def _sign_in(session: Session, settings: Settings, user: User) -> SignIn:
    """A session, or a challenge first when the account has MFA."""
    if user.mfa_enabled:
        lifetime = timedelta(minutes=settings.mfa_challenge_minutes)
        challenge = encode_jwt(settings, subject=user.id, kind="mfa_challenge", lifetime=lifetime)
        return MfaRequired(challenge_token=challenge, expires_in=int(lifetime.total_seconds()), user_id=user.id)
    return issue_session(session, settings, user)


def _refuse_suspended(user: User) -> None:
    if user.status is UserStatus.SUSPENDED:
        raise Forbidden("This account is suspended.", code="ACCOUNT_SUSPENDED")


def _limit(limiter: RateLimiter, key: str, limit: str, message: str) -> None:
    verdict = limiter.hit(key, rule(limit))
    if not verdict.allowed:
        raise RateLimited(f"{message} Please retry after {verdict.retry_after} seconds.",
                          retry_after=verdict.retry_after, headers=verdict.headers())


@lru_cache(maxsize=4)
def _dummy_hash(time_cost: int, memory_kib: int) -> str:
    return _hasher(time_cost, memory_kib).hash(new_secret(16))


def bootstrap_needed(session: Session) -> bool:
    """Whether the installation still waits for its first administrator."""
    return not repository.has_flag(session, BOOTSTRAP_FLAG) and repository.count(session) == 0


def bootstrap(session: Session, settings: Settings, data: Registration) -> TokenPair:
    """Create the first administrator and sign them in; only while no account exists."""
    if not bootstrap_needed(session):
        raise Conflict("This installation already has its administrator; sign in instead.",
                       code="ALREADY_BOOTSTRAPPED")
    try:
        # The flag's primary key is the lock: a concurrent bootstrap fails here on the key.
        repository.insert_flag(session, BOOTSTRAP_FLAG)
    except IntegrityError:
        raise Conflict("This installation already has its administrator; sign in instead.",
                       code="ALREADY_BOOTSTRAPPED") from None
    user = create_user(session, settings, email=data.email, password=data.password, name=data.name,
                       is_admin=True)
    user.onboarded = True
    return issue_session(session, settings, user)


SIGNUP_SUBJECT = "Your Cloudlet account"


def register(session: Session, settings: Settings, limiter: RateLimiter, data: Registration,
             ip: str | None) -> None:
    """Open an account for its owner, when the operator allows sign-ups, under a per-address limit.

    The answer is the same whether or not the email already has an account, so that sign-up does
    not tell strangers who has one: a new owner is welcomed by email, an existing owner is told by
    email that someone tried to sign up with their address.
    """
    if not settings.allow_registration:
        raise Forbidden("Registration is closed on this server; ask an administrator for an account.",
                        code="REGISTRATION_CLOSED")
    _limit(limiter, f"signup:address:{ip}", settings.signup_rate_per_address, "Too many sign-ups from this address.")
    check_password_policy(settings, data.password)
    address = normalize_email(data.email)
    sign_in = f"{settings.public_url.rstrip('/')}/login"
    existing = repository.find_by_email(session, address)
    if existing is None:
        try:
            with session.begin_nested():
                user = create_user(session, settings, email=address, password=data.password, name=data.name)
        except (IntegrityError, Conflict):
            # A concurrent sign-up with the same address won the unique email; answer as if it existed.
            existing = repository.find_by_email(session, address)
        else:
            mail.queue(session, to=user.email, subject=SIGNUP_SUBJECT, kind="signup", body=(
                f"Hello {user.name or user.email},\n\nYour Cloudlet account is ready. Sign in here:\n{sign_in}\n"))
            return
    # The hash is spent anyway, so that the time of the answer does not tell either.
    hash_password(settings, data.password)
    if existing is not None:
        mail.queue(session, to=existing.email, subject=SIGNUP_SUBJECT, kind="signup_existing", body=(
            f"Hello {existing.name or existing.email},\n\nSomeone tried to open a new Cloudlet account with this "
            f"email address, which already has one. If it was you, sign in here (or reset your password "
            f"from that page):\n{sign_in}\n\nIf it was not you, ignore this email; nothing has changed.\n"))


def login(session: Session, settings: Settings, limiter: RateLimiter, *, email: str, password: str,
          ip: str | None) -> SignIn:
    """Check a password sign-in under the per-account and per-address limits."""
    address = normalize_email(email)
    _limit(limiter, f"login:address:{ip}", settings.login_rate_per_address,
           "Too many sign-in attempts from this address.")
    _limit(limiter, f"login:account:{address}", settings.login_rate_per_account,
           "Too many sign-in attempts for this account.")
    user = repository.find_by_email(session, address)
    if user is None or not user.password_hash:
        # Spend the same time as a real check, so the answer's timing does not reveal accounts.
        with contextlib.suppress(VerificationError, InvalidHashError):
            _hasher(settings.argon2_time_cost, settings.argon2_memory_kib).verify(
                _dummy_hash(settings.argon2_time_cost, settings.argon2_memory_kib), password)
        raise Unauthenticated(BAD_CREDENTIALS, code="INVALID_CREDENTIALS")
    if not password_matches(settings, user, password):
        raise Unauthenticated(BAD_CREDENTIALS, code="INVALID_CREDENTIALS")
    _refuse_suspended(user)
    limiter.clear(f"login:account:{address}", rule(settings.login_rate_per_account))
    return _sign_in(session, settings, user)


def refresh(session: Session, settings: Settings, refresh_token: str) -> TokenPair:
    """Spend a refresh token for a new session in the same family; a spent token revokes its family."""
    now = clock.now()
    token = repository.find_refresh_token(session, digest(refresh_token))
    if token is None or token.revoked_at is not None:
        raise Unauthenticated("The refresh token is invalid or has been revoked.", code="INVALID_REFRESH_TOKEN")
    if token.used_at is not None:
        raise RefreshTokenReused(token.family, token.user_id)
    if token.expires_at <= now:
        raise Unauthenticated("The refresh token has expired; sign in again.", code="REFRESH_TOKEN_EXPIRED")
    if not repository.spend_refresh_token(session, token.id, now):
        raise RefreshTokenReused(token.family, token.user_id)  # a concurrent request spent it a moment ago
    user = repository.get(session, token.user_id)
    if user is None:
        raise Unauthenticated("The refresh token is invalid or has been revoked.", code="INVALID_REFRESH_TOKEN")
    _refuse_suspended(user)
    return issue_session(session, settings, user, family=token.family)


def revoke_family(session: Session, reused: RefreshTokenReused) -> None:
    """End every session of the family a reused refresh token belongs to, and the access JWTs of the user's
    sessions with them: whoever replayed the token may hold one (the other sessions refresh theirs)."""
    repository.revoke_family(session, reused.family, clock.now())
    user = repository.get(session, reused.user_id)
    if user is not None:
        _raise_access_epoch(session, user)


def _raise_access_epoch(session: Session, user: User) -> None:
    # In SQL, so two sign-outs at once both count and a stale copy of the row cannot lower it.
    user.access_epoch = User.access_epoch + 1
    session.flush()


def _end_all_sessions(session: Session, user: User) -> None:
    """Revoke every refresh session of the user and, at once, every access JWT issued in them."""
    _raise_access_epoch(session, user)
    repository.revoke_user_families(session, user.id, clock.now())
    session.flush()


def logout(session: Session, user: User, refresh_token: str | None) -> None:
    """End the session a refresh token belongs to, or every session of the user when none is given.

    The access JWTs of the ended sessions stop working at once, on every replica: raising the user's
    epoch makes every older JWT check its session (see access_token_current), and those sessions are
    revoked here in the same transaction.
    """
    if refresh_token is None:
        _end_all_sessions(session, user)
        return
    _raise_access_epoch(session, user)
    token = repository.find_refresh_token(session, digest(refresh_token))
    # Another user's token, or none at all, is left alone: the answer is the same either way.
    if token is not None and token.user_id == user.id:
        repository.revoke_family(session, token.family, clock.now())


# --- password resets -----------------------------------------------------------------------------

RESET_SUBJECT = "Reset your Cloudlet password"


def forgot_password(session: Session, settings: Settings, limiter: RateLimiter, email: str, ip: str | None) -> None:
    """Email a single-use reset link if the account exists; says nothing either way."""
    address = normalize_email(email)
    # Counted whether or not the account exists, so the limit says nothing about it either.
    _limit(limiter, f"reset:address:{ip}", settings.login_rate_per_address,
           "Too many password reset requests from this address.")
    _limit(limiter, f"reset:account:{address}", settings.login_rate_per_account,
           "Too many password reset requests for this email.")
    user = repository.find_by_email(session, address)
    if user is None or user.status is UserStatus.SUSPENDED:
        return
    secret = new_secret(32)
    repository.insert_password_reset(session, PasswordReset(
        user_id=user.id, token_hash=digest(secret),
        expires_at=clock.now() + timedelta(minutes=settings.password_reset_minutes),
    ))
    link = f"{settings.public_url.rstrip('/')}/reset-password?token={secret}"
    body = (f"Hello {user.name or user.email},\n\n"
            f"Someone (hopefully you) asked to reset the password of your Cloudlet account.\n"
            f"Open this link within {settings.password_reset_minutes} minutes to choose a new one:\n\n"
            f"{link}\n\n"
            f"If you did not ask for this, ignore this email; your password stays as it is.\n")
    mail.queue(session, to=user.email, subject=RESET_SUBJECT, body=body, kind="password_reset")


def reset_password(session: Session, settings: Settings, token: str, new_password: str) -> User:
    """Set a new password with a reset token, spend the token and end every session of the user."""
    now = clock.now()
    reset = repository.find_password_reset(session, digest(token))
    if reset is None:
        raise Invalid("token", "This password reset link is invalid.", code="INVALID_RESET_TOKEN")
    if reset.used_at is not None:
        raise Invalid("token", "This password reset link has already been used; request a new one.",
                      code="RESET_TOKEN_USED")
    if reset.expires_at <= now:
        raise Invalid("token", "This password reset link has expired; request a new one.",
                      code="RESET_TOKEN_EXPIRED")
    check_password_policy(settings, new_password, "new_password")
    user = repository.get(session, reset.user_id)
    if user is None or not repository.use_password_reset(session, reset.id, now):
        raise Invalid("token", "This password reset link has already been used; request a new one.",
                      code="RESET_TOKEN_USED")
    user.password_hash = hash_password(settings, new_password)
    repository.retire_password_resets(session, user.id, now)
    _end_all_sessions(session, user)
    return user


def change_password(session: Session, settings: Settings, user: User, current: str, new: str) -> None:
    """Replace the password after checking the current one; every refresh session ends."""
    if not password_matches(settings, user, current):
        raise Invalid("current_password", "The current password is incorrect.", code="WRONG_PASSWORD")
    check_password_policy(settings, new, "new_password")
    user.password_hash = hash_password(settings, new)
    repository.revoke_user_families(session, user.id, clock.now())
    session.flush()


# --- MFA (TOTP, RFC 6238) -----------------------------------------------------------------------

MFA_ISSUER = "Cloudlet"
TOTP_STEP = 30
CODE_PATTERN = re.compile(r"^\d{6}$")
BAD_CODE = "The code is not valid; enter the current code from your authenticator app."


def _mfa_limits(limiter: RateLimiter, settings: Settings, *, user_id: int | None, ip: str | None) -> None:
    _limit(limiter, f"mfa:address:{ip}", settings.mfa_rate, "Too many MFA attempts from this address.")
    if user_id is not None:
        _limit(limiter, f"mfa:user:{user_id}", settings.mfa_rate, "Too many MFA attempts for this account.")


def matching_step(secret: str, code: str, at: datetime) -> int | None:
    """The 30 s step (previous, current or next, per RFC 6238 drift) whose code this is, if any."""
    code = code.replace(" ", "")
    if not CODE_PATTERN.match(code):
        return None
    totp = pyotp.TOTP(secret, interval=TOTP_STEP)
    current = int(at.timestamp()) // TOTP_STEP
    for step in (current - 1, current, current + 1):
        if step >= 0 and hmac.compare_digest(totp.generate_otp(step), code):
            return step
    return None


@lru_cache(maxsize=4)
def _mfa_box(master_secret: str) -> SecretBox:
    return SecretBox(master_secret, "mfa")


def _accept_code(session: Session, settings: Settings, user: User, code: str) -> bool:
    """Whether the code is the user's for a nearby step that has not been used yet; records the step."""
    if not user.mfa_secret:
        return False
    step = matching_step(_mfa_box(settings.jwt_secret).open(user.mfa_secret), code, clock.now())
    # The conditional update makes a replayed (or concurrently submitted) code fail.
    return step is not None and repository.accept_mfa_step(session, user.id, step)


def mfa_enabled(user: User) -> bool:
    """Whether the user's sign-in needs a TOTP code (not rate limited: it guesses nothing)."""
    return user.mfa_enabled


def mfa_enroll(session: Session, settings: Settings, limiter: RateLimiter, user: User,
               ip: str | None) -> MfaEnrollment:
    """Give the user a new TOTP secret to confirm with a code; MFA stays off until then."""
    _mfa_limits(limiter, settings, user_id=user.id, ip=ip)
    if user.mfa_enabled:
        raise Conflict("MFA is already enabled; disable it before enrolling again.", code="MFA_ALREADY_ENABLED")
    secret = pyotp.random_base32()
    user.mfa_secret = _mfa_box(settings.jwt_secret).seal(secret)  # shown once below, kept only sealed
    user.mfa_last_step = None
    session.flush()
    uri = pyotp.TOTP(secret, interval=TOTP_STEP).provisioning_uri(name=user.email, issuer_name=MFA_ISSUER)
    return MfaEnrollment(secret=secret, otpauth_uri=uri)


def mfa_verify(session: Session, settings: Settings, limiter: RateLimiter, user: User, code: str,
               ip: str | None) -> None:
    """Turn MFA on once the user proves their authenticator holds the enrolled secret."""
    _mfa_limits(limiter, settings, user_id=user.id, ip=ip)
    if user.mfa_enabled:
        raise Conflict("MFA is already enabled.", code="MFA_ALREADY_ENABLED")
    if not user.mfa_secret:
        raise Invalid("code", "Start with /v1/auth/mfa/enroll to get a secret first.", code="MFA_NOT_ENROLLED")
    if not _accept_code(session, settings, user, code):
        raise Invalid("code", BAD_CODE, code="INVALID_MFA_CODE")
    user.mfa_enabled = True
    session.flush()


def mfa_disable(session: Session, settings: Settings, limiter: RateLimiter, user: User, code: str,
                ip: str | None) -> None:
    """Turn MFA off; a valid current code is required."""
    _mfa_limits(limiter, settings, user_id=user.id, ip=ip)
    if not user.mfa_enabled:
        raise Invalid(None, "MFA is not enabled.", code="MFA_NOT_ENABLED")
    if not _accept_code(session, settings, user, code):
        raise Invalid("code", BAD_CODE, code="INVALID_MFA_CODE")
    user.mfa_enabled = False
    user.mfa_secret = None
    session.flush()


def mfa_challenge(session: Session, settings: Settings, limiter: RateLimiter, challenge_token: str, code: str,
                  ip: str | None) -> TokenPair:
    """Finish a sign-in with MFA: the challenge token from login and a TOTP code."""
    _mfa_limits(limiter, settings, user_id=None, ip=ip)
    claims = decode_jwt(settings, challenge_token, kind="mfa_challenge")
    user_id = parse_id(str(claims["sub"]))  # a subject that is no id names no user
    user = repository.get(session, user_id) if user_id is not None else None
    if user is None or not user.mfa_enabled:
        raise Unauthenticated("The challenge token is invalid; sign in again.", code="INVALID_TOKEN")
    _mfa_limits(limiter, settings, user_id=user.id, ip=None)
    _refuse_suspended(user)
    if not _accept_code(session, settings, user, code):
        raise Unauthenticated(BAD_CODE, code="INVALID_MFA_CODE")
    return issue_session(session, settings, user)


# --- GitHub --------------------------------------------------------------------------------------

OAUTH_STATE_MINUTES = 10


def github_redirect(settings: Settings) -> str:
    """The GitHub consent URL, with a signed short-lived state to check on the way back."""
    github.require_configured(settings)
    state = encode_jwt(settings, subject=0, kind="oauth_state", lifetime=timedelta(minutes=OAUTH_STATE_MINUTES))
    return github.authorize_url(settings, state)


def github_sign_in(session: Session, settings: Settings, limiter: RateLimiter, *, code: str, state: str,
                   ip: str | None, denied: str | None = None) -> SignIn:
    """Sign in with GitHub: by linked id, else by verified primary email, else a new account (a sign-up, under
    the same per-address limit as the email one)."""
    github.require_configured(settings)
    if denied:
        raise Invalid(None, f"GitHub sign-in was not completed: {denied}", code="OAUTH_DENIED")
    try:
        decode_jwt(settings, state, kind="oauth_state")
    except Unauthenticated:
        raise Invalid("state", "The GitHub sign-in is invalid or has expired; start again.",
                      code="INVALID_OAUTH_STATE") from None
    if not code:
        raise Invalid("code", "GitHub did not return an authorization code.", code="OAUTH_REFUSED")
    identity = github.identify(settings, code)
    user = repository.find_by_github_id(session, identity.id)
    if user is None and identity.verified_email:
        user = repository.find_by_email(session, normalize_email(identity.verified_email))
        if user is not None:
            user.github_id = identity.id
    if user is None:
        if not identity.verified_email:
            raise Invalid(None, "Your GitHub account has no verified primary email to sign up with.",
                          code="OAUTH_NO_EMAIL")
        if not settings.allow_registration:
            raise Forbidden("Registration is closed on this server; ask an administrator for an account.",
                            code="REGISTRATION_CLOSED")
        _limit(limiter, f"signup:address:{ip}", settings.signup_rate_per_address,
               "Too many sign-ups from this address.")
        user = create_user(session, settings, email=identity.verified_email, password=None,
                           name=identity.name or identity.login)
        user.github_id = identity.id
    session.flush()
    _refuse_suspended(user)
    return _sign_in(session, settings, user)


# --- administration ------------------------------------------------------------------------------


def find_user_by_email(session: Session, email: str) -> User | None:
    """The account with this email (compared as stored: trimmed and lower-cased), if any."""
    return repository.find_by_email(session, normalize_email(email))


def get_user(session: Session, user_id: int) -> User:
    """A user by id, or NotFound."""
    user = repository.get(session, user_id)
    if user is None:
        raise NotFound("user", user_id)
    return user


def list_users(session: Session, *, limit: int, offset: int) -> Page[UserRead]:
    """One page of accounts in id order."""
    users = [UserRead.model_validate(u) for u in repository.page(session, limit, offset)]
    return Page[UserRead](items=users, total=repository.count(session), limit=limit, offset=offset)


def admin_create_user(session: Session, settings: Settings, data: UserCreate) -> User:
    """An account an administrator opens for someone, whatever the registration setting."""
    return create_user(session, settings, email=data.email, password=data.password, name=data.name,
                       is_admin=data.is_admin)


def delete_user(session: Session, actor: User, user_id: int) -> None:
    """Remove an account, the projects only it belongs to, and everything that cascades from them.

    Never the acting administrator's own; refused while it is the last owner of a shared project or
    a project of its holds resources (projects.release_user says which).
    """
    user = get_user(session, user_id)
    if user.id == actor.id:
        raise Invalid(None, "You cannot delete your own account.", code="CANNOT_DELETE_SELF")
    projects.release_user(session, user.id)
    repository.delete(session, user)


def suspend_user(session: Session, actor: User, user_id: int, reason: str | None) -> User:
    """Stop an account from signing in or using any credential; its sessions end now."""
    user = get_user(session, user_id)
    if user.id == actor.id:
        raise Invalid(None, "You cannot suspend your own account.", code="CANNOT_SUSPEND_SELF")
    user.status = UserStatus.SUSPENDED
    user.suspended_reason = reason.strip() if reason and reason.strip() else None
    repository.revoke_user_families(session, user.id, clock.now())
    session.flush()
    return user


def unsuspend_user(session: Session, user_id: int) -> User:
    """Let a suspended account sign in again."""
    user = get_user(session, user_id)
    user.status = UserStatus.ACTIVE
    user.suspended_reason = None
    session.flush()
    return user
