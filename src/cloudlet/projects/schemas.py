"""What the projects service takes and gives back, in no surface's dialect."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from pydantic import BaseModel, ConfigDict, EmailStr, Field, field_validator

from cloudlet.auth.models import User
from cloudlet.kit.text import one_line
from cloudlet.projects.models import ProjectType, Role


class Actor(Protocol):
    """Who acts: a user, and the one project their credential is fenced to (if any). A Caller is one."""

    @property
    def user(self) -> User:
        """The acting user."""
        ...

    @property
    def user_id(self) -> int:
        """The acting user's id (known without reading the user's row)."""
        ...

    @property
    def project_scope(self) -> int | None:
        """The project the credential is limited to, or None."""
        ...


@dataclass(frozen=True)
class MemberActor:
    """A member acting in one project with no request behind it (a job on their behalf, such as their Telegram
    chat with a server's agent): an Actor fenced to that project, as a token limited to it would be."""

    user: User
    project_scope: int

    @property
    def user_id(self) -> int:
        """The acting user's id."""
        return self.user.id


@dataclass(frozen=True)
class MemberContact:
    """Where a member of a project hears of what happens in it, and whether they also see the operator's
    objects (nodes)."""

    email: str
    admin: bool


class Permission(enum.StrEnum):
    """Extra rights an owner may grant one member; owners hold all of them by their role."""

    MEMBERS_MANAGE = "members:manage"
    INSTANCES_BILLING = "instances:billing"
    WALLET_TOPUP = "wallet:topup"


PERMISSION_DESCRIPTIONS: dict[Permission, str] = {
    Permission.MEMBERS_MANAGE: "Invite members, remove members and cancel invitations (owners stay owner-only).",
    Permission.INSTANCES_BILLING: "Create, upgrade, delete and reactivate instances (actions that charge the wallet).",
    Permission.WALLET_TOPUP: "Add funds to the project's wallet.",
}


class Locale(enum.StrEnum):
    """Languages an invitation email and its link can be in."""

    EN = "en"
    AR = "ar"


class InvitationState(enum.StrEnum):
    """An invitation as a reader sees it: the stored status, or "expired" once past expires_at."""

    PENDING = "pending"
    ACCEPTED = "accepted"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


class InvitationMatch(enum.StrEnum):
    """How a pending invitation relates to the account looking at it."""

    PENDING = "pending"
    WRONG_EMAIL = "wrong_email"


class ProjectCreate(BaseModel):
    """A new team project."""

    name: str = Field(min_length=1, max_length=200)

    @field_validator("name")
    @classmethod
    def _one_line(cls, value: str) -> str:
        # The name goes into invitation emails' subjects and bodies: one printable line only.
        value = one_line(value)
        if not value:
            raise ValueError("the name must not be blank")
        return value


class ProjectUpdate(ProjectCreate):
    """A new name for a project."""


class InvitationCreate(BaseModel):
    """An invitation to send: who, as what, and in which language."""

    email: EmailStr = Field(max_length=320)
    role: Role = Role.MEMBER
    locale: Locale = Locale.EN


class RoleUpdate(BaseModel):
    """A member's new role."""

    role: Role


class PermissionGrant(BaseModel):
    """A permission to grant a member; the key must be in the catalogue."""

    key: Permission


class PermissionRead(BaseModel):
    """One entry of the permission catalogue."""

    key: Permission
    description: str


class UserBrief(BaseModel):
    """A user as other members see them."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    email: str


class ProjectRead(BaseModel):
    """A project."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    type: ProjectType
    created_at: datetime


class ProjectRoleRead(ProjectRead):
    """A project together with the acting user's role in it."""

    role: Role


class MembershipRead(BaseModel):
    """A membership record."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    project_id: int
    user_id: int
    role: Role
    created_at: datetime


class MemberRead(BaseModel):
    """A member of a project: the membership, the person, and their explicit grants."""

    id: int  # the membership's id
    project_id: int
    role: Role
    user: UserBrief
    permissions: list[Permission]
    joined_at: datetime


class InvitationRead(BaseModel):
    """An invitation as the project's members see it."""

    id: int
    project_id: int
    email: str
    role: Role
    state: InvitationState
    expires_at: datetime
    created_at: datetime
    inviter: UserBrief | None


class TeamRead(BaseModel):
    """A project's team page: who is in it, who is invited, and the reader's role."""

    project: ProjectRead
    current_user_role: Role
    members: list[MemberRead]
    invitations: list[InvitationRead]


class InvitationPreview(BaseModel):
    """A pending invitation resolved for the signed-in account, before it accepts."""

    match: InvitationMatch
    current_user_email: str
    invitation: InvitationRead
    project: ProjectRead


class AcceptedInvitation(BaseModel):
    """The outcome of accepting: the project joined and the membership held in it."""

    project: ProjectRead
    membership: MembershipRead


class MemberPermissionsRead(BaseModel):
    """A member's explicit grants and what they add up to with the member's role."""

    user_id: int
    role: Role
    granted: list[Permission]
    effective: list[Permission]
