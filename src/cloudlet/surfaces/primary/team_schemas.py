"""Evorxa's shapes for /api/me and the team section, built from the projects service's answers."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import Path
from pydantic import BaseModel

from cloudlet.auth.models import User
from cloudlet.kit.serial import IsoMillis
from cloudlet.projects.models import ProjectType, Role
from cloudlet.projects.schemas import (
    AcceptedInvitation,
    InvitationMatch,
    InvitationPreview,
    InvitationRead,
    MemberRead,
    ProjectRead,
    ProjectRoleRead,
    TeamRead,
    UserBrief,
)

# Ids are 32-bit integers in the database; a larger one is bad input, not a server error.
ObjectId = Annotated[int, Path(ge=1, le=2_147_483_647)]


class MeUser(BaseModel):
    """The signed-in user as /api/me shows it."""

    id: int
    email: str
    name: str
    wallet_balance: int  # minor units of the default project's wallet
    onboarded: bool


class MeProject(BaseModel):
    """One of the user's projects with the user's role in it."""

    id: int
    name: str
    type: ProjectType
    current_user_role: Role


class MeRead(BaseModel):
    """GET /api/me."""

    user: MeUser
    projects: list[MeProject]

    @classmethod
    def of(cls, user: User, projects: list[ProjectRoleRead], wallet_balance: int) -> MeRead:
        """Render the user, their default project's wallet balance (minor units) and their projects."""
        return cls(
            user=MeUser(id=user.id, email=user.email, name=user.name, wallet_balance=wallet_balance,
                        onboarded=user.onboarded),
            projects=[MeProject(id=p.id, name=p.name, type=p.type, current_user_role=p.role) for p in projects],
        )


class PersonRead(BaseModel):
    """A user next to a member or an invitation."""

    id: int
    name: str
    email: str

    @classmethod
    def of(cls, user: UserBrief) -> PersonRead:
        """Render a user."""
        return cls(id=user.id, name=user.name, email=user.email)


class ProjectBrief(BaseModel):
    """A project as the team section shows it."""

    id: int
    name: str
    type: ProjectType

    @classmethod
    def of(cls, project: ProjectRead) -> ProjectBrief:
        """Render a project."""
        return cls(id=project.id, name=project.name, type=project.type)


class TeamMemberRead(BaseModel):
    """A member: the membership id (used to remove them), the role and the person."""

    id: int
    role: Role
    user: PersonRead

    @classmethod
    def of(cls, member: MemberRead) -> TeamMemberRead:
        """Render a member."""
        return cls(id=member.id, role=member.role, user=PersonRead.of(member.user))


class TeamInvitationRead(BaseModel):
    """A pending invitation in the members list."""

    id: int
    email: str
    role: Role
    expires_at: IsoMillis
    inviter: PersonRead | None

    @classmethod
    def of(cls, invitation: InvitationRead) -> TeamInvitationRead:
        """Render a pending invitation."""
        return cls(id=invitation.id, email=invitation.email, role=invitation.role, expires_at=invitation.expires_at,
                   inviter=PersonRead.of(invitation.inviter) if invitation.inviter else None)


class TeamPage(BaseModel):
    """GET /api/projects/{project}/members."""

    project: ProjectBrief
    current_user_role: Role
    members: list[TeamMemberRead]
    invitations: list[TeamInvitationRead]

    @classmethod
    def of(cls, team: TeamRead) -> TeamPage:
        """Render a team."""
        return cls(project=ProjectBrief.of(team.project), current_user_role=team.current_user_role,
                   members=[TeamMemberRead.of(m) for m in team.members],
                   invitations=[TeamInvitationRead.of(i) for i in team.invitations])


class InvitationCreated(BaseModel):
    """POST /api/projects/{project}/invitations."""

    id: int
    project_id: int
    email: str
    role: Role
    expires_at: IsoMillis

    @classmethod
    def of(cls, invitation: InvitationRead) -> InvitationCreated:
        """Render a new invitation."""
        return cls(id=invitation.id, project_id=invitation.project_id, email=invitation.email,
                   role=invitation.role, expires_at=invitation.expires_at)


class InvitationDetail(BaseModel):
    """An invitation as its recipient previews it."""

    id: int
    email: str
    role: Role
    expires_at: IsoMillis
    project: ProjectBrief
    invited_by: PersonRead | None


class InvitationPreviewRead(BaseModel):
    """GET /api/project-invitations/{token}."""

    status: InvitationMatch
    current_user_email: str
    invitation: InvitationDetail

    @classmethod
    def of(cls, preview: InvitationPreview) -> InvitationPreviewRead:
        """Render a preview."""
        inv = preview.invitation
        return cls(status=preview.match, current_user_email=preview.current_user_email,
                   invitation=InvitationDetail(
                       id=inv.id, email=inv.email, role=inv.role, expires_at=inv.expires_at,
                       project=ProjectBrief.of(preview.project),
                       invited_by=PersonRead.of(inv.inviter) if inv.inviter else None))


class MembershipBrief(BaseModel):
    """A membership record."""

    id: int
    project_id: int
    user_id: int
    role: Role


class AcceptedRead(BaseModel):
    """POST /api/project-invitations/{token}/accept."""

    status: Literal["accepted"] = "accepted"
    project: ProjectBrief
    membership: MembershipBrief

    @classmethod
    def of(cls, accepted: AcceptedInvitation) -> AcceptedRead:
        """Render an accepted invitation."""
        m = accepted.membership
        return cls(project=ProjectBrief.of(accepted.project),
                   membership=MembershipBrief(id=m.id, project_id=m.project_id, user_id=m.user_id, role=m.role))
