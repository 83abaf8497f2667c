"""Primary surface: the team section (Evorxa): members, invitations, and accepting an invitation.

Every route asks for scope "all" as the reference does. A project the caller is not in answers
404. Owners manage the team; a member granted "members:manage" may invite and remove members and
cancel their invitations (not owners'); any member may leave (remove their own membership).
"""

from __future__ import annotations

from fastapi import APIRouter, Response

from cloudlet.projects import service as projects
from cloudlet.projects.schemas import InvitationCreate
from cloudlet.surfaces.deps import AppRuntime, DbSession, FullCaller
from cloudlet.surfaces.primary.team_schemas import (
    AcceptedRead,
    InvitationCreated,
    InvitationPreviewRead,
    ObjectId,
    TeamPage,
)

router = APIRouter(prefix="/api", tags=["primary"])


@router.get("/projects/{project}/members", response_model=TeamPage,
            summary="Members with their roles, and pending invitations")
def list_members(project: ObjectId, caller: FullCaller, db: DbSession) -> TeamPage:
    """The team page of a project the caller belongs to."""
    return TeamPage.of(projects.team(db, caller, project))


@router.post("/projects/{project}/invitations", status_code=201, response_model=InvitationCreated,
             summary="Invite a teammate by email (owners)")
def create_invitation(project: ObjectId, body: InvitationCreate, caller: FullCaller, db: DbSession,
                      runtime: AppRuntime) -> InvitationCreated:
    """Create an invitation valid for seven days and email its link (rate limited per inviter and project)."""
    return InvitationCreated.of(projects.invite(db, runtime.settings, runtime.limiter, caller, project, body))


@router.delete("/projects/{project}/members/{member}", status_code=204, response_class=Response,
               summary="Remove a member by membership id (owners)")
def remove_member(project: ObjectId, member: ObjectId, caller: FullCaller, db: DbSession) -> Response:
    """Remove a member; the last owner stays."""
    projects.remove_member(db, caller, project, membership_id=member)
    return Response(status_code=204)


@router.delete("/projects/{project}/invitations/{invite}", status_code=204, response_class=Response,
               summary="Cancel an invitation that was not accepted (owners)")
def cancel_invitation(project: ObjectId, invite: ObjectId, caller: FullCaller, db: DbSession) -> Response:
    """Cancel an invitation."""
    projects.cancel_invitation(db, caller, project, invite)
    return Response(status_code=204)


@router.get("/project-invitations/{token}", response_model=InvitationPreviewRead,
            summary="Preview an invitation for the signed-in account")
def preview_invitation(token: str, caller: FullCaller, db: DbSession) -> InvitationPreviewRead:
    """Resolve an invitation token: "pending" if it is the caller's, "wrong_email" otherwise; 410 if unusable."""
    return InvitationPreviewRead.of(projects.preview_invitation(db, caller, token))


@router.post("/project-invitations/{token}/accept", response_model=AcceptedRead,
             summary="Join the project the invitation is for")
def accept_invitation(token: str, caller: FullCaller, db: DbSession) -> AcceptedRead:
    """Accept an invitation sent to the caller's email; accepting again answers the same."""
    return AcceptedRead.of(projects.accept_invitation(db, caller, token))
