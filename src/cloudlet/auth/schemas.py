"""What the account flows take in and give back: credentials, sessions, MFA, users."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, EmailStr, Field

from cloudlet.auth.models import UserStatus
from cloudlet.kit.text import OneLine

# Long enough for any password the policy accepts; the policy itself gives the precise message.
Password = Annotated[str, Field(min_length=1, max_length=1024)]


class Registration(BaseModel):
    """A new account asked for by the person who will own it (register, bootstrap)."""

    email: EmailStr
    password: Password
    name: OneLine = Field(default="", max_length=200)  # shown in invitation emails: one printable line


class UserCreate(Registration):
    """An account an administrator creates."""

    is_admin: bool = False


class Credentials(BaseModel):
    """An email and password to sign in with."""

    # A plain string, not EmailStr: a malformed address is just a failed sign-in, never a hint.
    email: str = Field(max_length=320)
    password: str = Field(max_length=1024)


class RefreshRequest(BaseModel):
    """A refresh token to exchange for a new session."""

    refresh_token: str = Field(min_length=1, max_length=200)


class LogoutRequest(BaseModel):
    """The refresh token whose family to end; without one, every session of the caller ends."""

    refresh_token: str | None = Field(default=None, max_length=200)


class PasswordForgotten(BaseModel):
    """The address to send a reset link to."""

    email: EmailStr


class PasswordResetConfirm(BaseModel):
    """A reset token from the email and the password to set."""

    token: str = Field(min_length=1, max_length=200)
    new_password: Password


class PasswordChange(BaseModel):
    """A signed-in user's password change."""

    current_password: str = Field(max_length=1024)
    new_password: Password


class MfaCode(BaseModel):
    """A six-digit code from the user's authenticator."""

    code: str = Field(min_length=1, max_length=16)


class MfaChallengeAnswer(BaseModel):
    """The second step of a sign-in with MFA."""

    challenge_token: str = Field(min_length=1, max_length=2000)
    code: str = Field(min_length=1, max_length=16)


class Suspension(BaseModel):
    """Why an administrator suspends an account."""

    reason: str | None = Field(default=None, max_length=500)


class TokenPair(BaseModel):
    """A signed-in session: a short access JWT and the refresh token that renews it."""

    access_token: str
    refresh_token: str
    expires_in: int
    token_type: Literal["Bearer"] = "Bearer"
    user_id: int = Field(exclude=True)  # who signed in, for the audit log; never in the answer


class MfaRequired(BaseModel):
    """The password was right; a TOTP code must follow at /v1/auth/mfa/challenge."""

    mfa_required: Literal[True] = True
    challenge_token: str
    expires_in: int
    user_id: int = Field(exclude=True)  # whose password was right, for the audit log; never in the answer


class MfaStatusRead(BaseModel):
    """Whether the user's sign-in needs a TOTP code."""

    enabled: bool


class MfaEnrollment(BaseModel):
    """The secret to load into an authenticator app, also as an otpauth:// URI for a QR code."""

    secret: str
    otpauth_uri: str


class BootstrapStatusRead(BaseModel):
    """Whether the installation still waits for its first administrator."""

    needs_bootstrap: bool


class MessageRead(BaseModel):
    """A human-readable acknowledgement."""

    message: str


class UserRead(BaseModel):
    """An account as its owner and administrators see it."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    email: str
    name: str
    is_admin: bool
    status: UserStatus
    suspended_reason: str | None = None
    mfa_enabled: bool
    created_at: datetime


class UserList(BaseModel):
    """One page of accounts and how many there are in all."""

    users: list[UserRead]
    total: int


class GitHubIdentity(BaseModel):
    """Who GitHub says signed in: the account id, login, name and verified primary email."""

    id: int
    login: str
    name: str | None = None
    verified_email: str | None = None
