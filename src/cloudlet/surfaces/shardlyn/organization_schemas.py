"""Shardlyn's shapes for organizations (Cloudlet projects), members, invites and permissions.

Shardlyn shows ids as strings, so ids are strings here too, as in its token endpoints.
"""

from __future__ import annotations

from pydantic import BaseModel

from cloudlet.kit.errors import Invalid, NotFound
from cloudlet.kit.ids import parse_id
from cloudlet.kit.serial import IsoSeconds
from cloudlet.projects.models import ProjectType, Role
from cloudlet.projects.schemas import (
    AcceptedInvitation,
    InvitationRead,
    InvitationState,
    MemberPermissionsRead,
    MemberRead,
    Permission,
    PermissionRead,
    ProjectRoleRead,
    UserBrief,
)


def path_id(raw: str, what: str) -> int:
    """An id from a path; anything that cannot be an id names nothing, so it is not found."""
    found = parse_id(raw)
    if found is None:
        raise NotFound(what, raw)
    return found


def chosen_organization(organization_id: int | str | None, default: int) -> int:
    """The organization (project) a request's optional `organization_id` names, else the default."""
    if organization_id is None:
        return default
    found = parse_id(str(organization_id))
    if found is None:
        raise Invalid("organization_id", "organization_id must be the id of one of your organizations.")
    return found


def organization_filter(organization_id: str | None) -> int | None:
    """The organization a list's optional `?organization_id=` narrows it to, or None for all the caller's."""
    return None if organization_id is None else chosen_organization(organization_id, 0)


class OrganizationRead(BaseModel):
    """An organization and the caller's role in it."""

    id: str
    name: str
    type: ProjectType  # "personal" (every user has one) or "team"
    role: Role
    created_at: IsoSeconds

    @classmethod
    def of(cls, project: ProjectRoleRead) -> OrganizationRead:
        """Render a project with the caller's role."""
        return cls(id=str(project.id), name=project.name, type=project.type, role=project.role,
                   created_at=project.created_at)


class PersonRead(BaseModel):
    """A user next to an invite."""

    id: str
    name: str
    email: str

    @classmethod
    def of(cls, user: UserBrief) -> PersonRead:
        """Render a user."""
        return cls(id=str(user.id), name=user.name, email=user.email)


class OrganizationMemberRead(BaseModel):
    """A member: the membership id, the user, the role and explicitly granted permissions."""

    id: str
    user_id: str
    email: str
    name: str
    role: Role
    permissions: list[Permission]
    joined_at: IsoSeconds

    @classmethod
    def of(cls, member: MemberRead) -> OrganizationMemberRead:
        """Render a member."""
        return cls(id=str(member.id), user_id=str(member.user.id), email=member.user.email,
                   name=member.user.name, role=member.role, permissions=member.permissions,
                   joined_at=member.joined_at)


class InviteRead(BaseModel):
    """An invite; status is "pending", "accepted", "cancelled" or "expired"."""

    id: str
    organization_id: str
    email: str
    role: Role
    status: InvitationState
    expires_at: IsoSeconds
    created_at: IsoSeconds
    invited_by: PersonRead | None

    @classmethod
    def of(cls, invitation: InvitationRead) -> InviteRead:
        """Render an invitation."""
        return cls(id=str(invitation.id), organization_id=str(invitation.project_id), email=invitation.email,
                   role=invitation.role, status=invitation.state, expires_at=invitation.expires_at,
                   created_at=invitation.created_at,
                   invited_by=PersonRead.of(invitation.inviter) if invitation.inviter else None)


class MemberPermissionsView(BaseModel):
    """A member's granted permissions and, with their role, the effective ones (owners hold all)."""

    user_id: str
    role: Role
    permissions: list[Permission]
    effective_permissions: list[Permission]

    @classmethod
    def of(cls, view: MemberPermissionsRead) -> MemberPermissionsView:
        """Render a member's permissions."""
        return cls(user_id=str(view.user_id), role=view.role, permissions=view.granted,
                   effective_permissions=view.effective)


class PermissionEntry(BaseModel):
    """One permission of the catalogue."""

    key: Permission
    description: str

    @classmethod
    def of(cls, permission: PermissionRead) -> PermissionEntry:
        """Render a catalogue entry."""
        return cls(key=permission.key, description=permission.description)


class OrganizationMembershipRead(BaseModel):
    """The membership an accepted invite made."""

    id: str
    organization_id: str
    user_id: str
    role: Role


class InviteAccepted(BaseModel):
    """POST /v1/invites/{token}/accept."""

    organization: OrganizationRead
    membership: OrganizationMembershipRead

    @classmethod
    def of(cls, accepted: AcceptedInvitation) -> InviteAccepted:
        """Render an accepted invite."""
        p, m = accepted.project, accepted.membership
        return cls(
            organization=OrganizationRead(id=str(p.id), name=p.name, type=p.type, role=m.role, created_at=p.created_at),
            membership=OrganizationMembershipRead(id=str(m.id), organization_id=str(m.project_id),
                                                  user_id=str(m.user_id), role=m.role),
        )
