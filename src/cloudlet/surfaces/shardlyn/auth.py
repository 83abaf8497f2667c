"""Shardlyn's /v1/auth: bootstrap, register, login, refresh, logout, password resets, MFA and GitHub sign-in."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, TypeVar

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse
from sqlalchemy.orm import Session

from cloudlet.auth import service as auth
from cloudlet.auth.schemas import (
    BootstrapStatusRead,
    Credentials,
    LogoutRequest,
    MessageRead,
    MfaChallengeAnswer,
    MfaCode,
    MfaEnrollment,
    MfaRequired,
    MfaStatusRead,
    PasswordForgotten,
    PasswordResetConfirm,
    RefreshRequest,
    Registration,
    TokenPair,
)
from cloudlet.surfaces.deps import AppRuntime, AppSettings, DbSession, SessionCaller, client_ip

router = APIRouter(prefix="/v1/auth", tags=["shardlyn"])

RESET_SENT = "If an account exists for this email, a password reset link has been sent to it."


def _refresh_session(runtime: AppRuntime) -> Iterator[Session]:
    """The request's transaction, except that a detected token reuse still revokes the family.

    The reuse answer is an error, so the request's transaction rolls back; the revocation is then
    written in a transaction of its own (after the first has ended, so SQLite's write lock is free).
    """
    try:
        with runtime.db.session() as session:
            yield session
    except auth.RefreshTokenReused as reused:
        with runtime.db.session() as session:
            auth.revoke_family(session, reused)
        raise


RefreshSession = Annotated[Session, Depends(_refresh_session, scope="function")]

SignedIn = TypeVar("SignedIn", TokenPair, MfaRequired, TokenPair | MfaRequired)


def signed_in(request: Request, answer: SignedIn) -> SignedIn:
    """Note who signed in, so the audit entry of this unauthenticated request names its actor."""
    request.state.actor_user_id = answer.user_id
    return answer


@router.get("/bootstrap/status", response_model=BootstrapStatusRead, summary="Check if bootstrap needed")
def bootstrap_status(db: DbSession) -> BootstrapStatusRead:
    """Whether the installation still waits for its first administrator."""
    return BootstrapStatusRead(needs_bootstrap=auth.bootstrap_needed(db))


@router.post("/bootstrap", status_code=201, response_model=TokenPair, summary="Create initial admin user")
def bootstrap(body: Registration, request: Request, db: DbSession, settings: AppSettings) -> TokenPair:
    """Create the first administrator (only while no account exists; 409 after) and sign them in."""
    return signed_in(request, auth.bootstrap(db, settings, body))


SIGNUP_SENT = "Thank you. Check your inbox: we have emailed this address about its account."


@router.post("/register", status_code=201, response_model=MessageRead, summary="Register new user")
def register(body: Registration, request: Request, db: DbSession, runtime: AppRuntime) -> MessageRead:
    """Open an account; the same 201 whether or not the email has one (its owner is emailed either way).

    403 when the operator has closed registration, 429 past the per-address sign-up limit.
    """
    auth.register(db, runtime.settings, runtime.limiter, body,
                  client_ip(request, runtime.settings.trusted_proxies))
    return MessageRead(message=SIGNUP_SENT)


@router.post("/login", response_model=TokenPair | MfaRequired, summary="Authenticate user")
def login(body: Credentials, request: Request, db: DbSession, runtime: AppRuntime) -> TokenPair | MfaRequired:
    """Tokens for a right email and password, or an MFA challenge when the account has MFA on."""
    return signed_in(request, auth.login(db, runtime.settings, runtime.limiter, email=body.email,
                                         password=body.password,
                                         ip=client_ip(request, runtime.settings.trusted_proxies)))


@router.post("/refresh", response_model=TokenPair, summary="Refresh access token")
def refresh(body: RefreshRequest, request: Request, db: RefreshSession, settings: AppSettings) -> TokenPair:
    """Spend a refresh token for new tokens; presenting a spent one ends its whole family (401)."""
    return signed_in(request, auth.refresh(db, settings, body.refresh_token))


@router.post("/logout", status_code=204, summary="Sign out")
def logout(caller: SessionCaller, db: DbSession, body: LogoutRequest | None = None) -> None:
    """Revoke the family of the refresh token in the body, or, with no body, every session of the caller."""
    auth.logout(db, caller.user, body.refresh_token if body else None)


@router.post("/forgot-password", status_code=202, response_model=MessageRead, summary="Request password reset")
def forgot_password(body: PasswordForgotten, request: Request, db: DbSession, runtime: AppRuntime) -> MessageRead:
    """Email a reset link if the account exists; the answer is the same either way."""
    auth.forgot_password(db, runtime.settings, runtime.limiter, body.email,
                         client_ip(request, runtime.settings.trusted_proxies))
    return MessageRead(message=RESET_SENT)


@router.post("/reset-password", response_model=MessageRead, summary="Reset password with token")
def reset_password(body: PasswordResetConfirm, db: DbSession, settings: AppSettings) -> MessageRead:
    """Set a new password with the emailed token; every refresh session of the account ends."""
    auth.reset_password(db, settings, body.token, body.new_password)
    return MessageRead(message="Your password has been reset; sign in with the new one.")


@router.get("/github", status_code=302, response_class=RedirectResponse, summary="Redirect to GitHub OAuth")
def github_redirect(settings: AppSettings) -> RedirectResponse:
    """Send the browser to GitHub's consent page (501 when GitHub sign-in is not configured)."""
    return RedirectResponse(auth.github_redirect(settings), status_code=302)


@router.get("/github/callback", response_model=TokenPair | MfaRequired, summary="GitHub OAuth callback")
def github_callback(request: Request, db: DbSession, runtime: AppRuntime, code: str = "", state: str = "",
                    error: str | None = None, error_description: str | None = None) -> TokenPair | MfaRequired:
    """Finish GitHub sign-in: the account linked to GitHub, else the one with its verified email, else a new one
    (429 past the per-address sign-up limit)."""
    denied = (error_description or error) if error else None
    ip = client_ip(request, runtime.settings.trusted_proxies)
    return signed_in(request, auth.github_sign_in(db, runtime.settings, runtime.limiter, code=code, state=state,
                                                  ip=ip, denied=denied))


@router.get("/mfa/status", response_model=MfaStatusRead, summary="Check MFA status")
def mfa_status(caller: SessionCaller) -> MfaStatusRead:
    """Whether the caller's sign-in needs a TOTP code."""
    return MfaStatusRead(enabled=auth.mfa_enabled(caller.user))


@router.post("/mfa/enroll", response_model=MfaEnrollment, summary="Start MFA enrollment")
def mfa_enroll(caller: SessionCaller, db: DbSession, runtime: AppRuntime) -> MfaEnrollment:
    """A new TOTP secret and its otpauth:// URI; MFA turns on only after /mfa/verify."""
    return auth.mfa_enroll(db, runtime.settings, runtime.limiter, caller.user, caller.ip)


@router.post("/mfa/verify", response_model=MfaStatusRead, summary="Verify TOTP enrollment")
def mfa_verify(body: MfaCode, caller: SessionCaller, db: DbSession, runtime: AppRuntime) -> MfaStatusRead:
    """Turn MFA on with a code from the enrolled authenticator."""
    auth.mfa_verify(db, runtime.settings, runtime.limiter, caller.user, body.code, caller.ip)
    return MfaStatusRead(enabled=True)


@router.post("/mfa/disable", response_model=MfaStatusRead, summary="Disable MFA")
def mfa_disable(body: MfaCode, caller: SessionCaller, db: DbSession, runtime: AppRuntime) -> MfaStatusRead:
    """Turn MFA off; a valid current code is required."""
    auth.mfa_disable(db, runtime.settings, runtime.limiter, caller.user, body.code, caller.ip)
    return MfaStatusRead(enabled=False)


@router.post("/mfa/challenge", response_model=TokenPair, summary="Submit TOTP during login")
def mfa_challenge(body: MfaChallengeAnswer, request: Request, db: DbSession, runtime: AppRuntime) -> TokenPair:
    """Finish a sign-in with MFA: the challenge token from /login and a current TOTP code."""
    return signed_in(request, auth.mfa_challenge(db, runtime.settings, runtime.limiter, body.challenge_token,
                                                 body.code, client_ip(request, runtime.settings.trusted_proxies)))
