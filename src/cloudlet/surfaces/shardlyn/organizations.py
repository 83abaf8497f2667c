"""Shardlyn surface: organizations, their members, invites and permissions at /v1.

An organization is a Cloudlet project: the personal project every user has, or a team project.
Every route but the catalogue takes a full-access credential; an organization the caller is not in
answers 404. Ids are strings. Bodies:

- GET  /v1/organizations -> [Organization]; Organization = {"id","name","type","role","created_at"}
  (`type` "personal"|"team", `role` the caller's, "owner"|"member").
- POST /v1/organizations {"name"} -> 201 Organization (a team with the caller as owner).
- GET/PUT {"name"}/DELETE /v1/organizations/{orgId} -> Organization / Organization / 204. PUT and
  DELETE are for owners; the personal organization cannot be deleted (400).
- GET /v1/organizations/{orgId}/members -> [Member]; Member = {"id" (membership),"user_id","email",
  "name","role","permissions" (explicit grants),"joined_at"}.
- POST .../members/invite {"email","role"?,"locale"?} -> 201 Invite; Invite = {"id","organization_id",
  "email","role","status","expires_at","created_at","invited_by": {"id","name","email"}|null}. Same
  rules and email as the primary surface's invitation; 409 if one is already pending.
- DELETE .../members/{userId} -> 204 (by user id; anyone may leave; the last owner stays).
- PUT .../members/{userId}/role {"role"} -> Member (owners; the last owner stays one).
- GET .../members/{userId}/permissions -> {"user_id","role","permissions","effective_permissions"};
  POST {"key"} grants one (owners; idempotent) and answers the same shape; DELETE .../{key} -> 204.
- GET .../invites -> [Invite] (pending ones); DELETE .../invites/{inviteId} -> 204 (cancels it).
- POST /v1/invites/{token}/accept -> {"organization": Organization, "membership": {"id",
  "organization_id","user_id","role"}}; 403 for another email, 410 expired/cancelled/accepted.
- GET /v1/permissions -> [{"key","description"}], what an owner may grant a member.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response

from cloudlet.billing import service as billing
from cloudlet.projects import service as projects
from cloudlet.projects.schemas import InvitationCreate, PermissionGrant, ProjectCreate, ProjectUpdate, RoleUpdate
from cloudlet.surfaces.deps import AppRuntime, AppSettings, AuthedCaller, DbSession, FullCaller
from cloudlet.surfaces.shardlyn.organization_schemas import (
    InviteAccepted,
    InviteRead,
    MemberPermissionsView,
    OrganizationMemberRead,
    OrganizationRead,
    PermissionEntry,
    path_id,
)

router = APIRouter(prefix="/v1", tags=["shardlyn"])

OrgId = Annotated[str, Path(alias="orgId")]
UserId = Annotated[str, Path(alias="userId")]
InviteId = Annotated[str, Path(alias="inviteId")]


def _org(raw: str) -> int:
    return path_id(raw, "organization")


def _user(raw: str) -> int:
    return path_id(raw, "member")


@router.get("/organizations", response_model=list[OrganizationRead], summary="List organizations")
def list_organizations(caller: FullCaller, db: DbSession) -> list[OrganizationRead]:
    """The caller's organizations with its role in each."""
    return [OrganizationRead.of(p) for p in projects.projects_of(db, caller)]


@router.post("/organizations", status_code=201, response_model=OrganizationRead, summary="Create organization")
def create_organization(body: ProjectCreate, caller: FullCaller, db: DbSession,
                        settings: AppSettings) -> OrganizationRead:
    """Create a team organization owned by the caller, with its wallets."""
    return OrganizationRead.of(billing.create_team_project(db, settings, caller, body))


@router.get("/organizations/{orgId}", response_model=OrganizationRead, summary="Get organization")
def get_organization(org_id: OrgId, caller: FullCaller, db: DbSession) -> OrganizationRead:
    """One of the caller's organizations."""
    return OrganizationRead.of(projects.project_of(db, caller, _org(org_id)))


@router.put("/organizations/{orgId}", response_model=OrganizationRead, summary="Update organization")
def update_organization(org_id: OrgId, body: ProjectUpdate, caller: FullCaller,
                        db: DbSession) -> OrganizationRead:
    """Rename an organization (owners)."""
    return OrganizationRead.of(projects.rename_project(db, caller, _org(org_id), body))


@router.delete("/organizations/{orgId}", status_code=204, response_class=Response, summary="Delete organization")
def delete_organization(org_id: OrgId, caller: FullCaller, db: DbSession) -> Response:
    """Delete a team organization and everything in it (owners)."""
    projects.delete_project(db, caller, _org(org_id))
    return Response(status_code=204)


@router.get("/organizations/{orgId}/members", response_model=list[OrganizationMemberRead], summary="List members")
def list_members(org_id: OrgId, caller: FullCaller, db: DbSession) -> list[OrganizationMemberRead]:
    """The organization's members, owners first."""
    return [OrganizationMemberRead.of(m) for m in projects.members(db, caller, _org(org_id))]


@router.post("/organizations/{orgId}/members/invite", status_code=201, response_model=InviteRead,
             summary="Invite member")
def invite_member(org_id: OrgId, body: InvitationCreate, caller: FullCaller, db: DbSession,
                  runtime: AppRuntime) -> InviteRead:
    """Invite an email address; the link it receives is valid for seven days (rate limited, 429)."""
    return InviteRead.of(projects.invite(db, runtime.settings, runtime.limiter, caller, _org(org_id), body))


@router.delete("/organizations/{orgId}/members/{userId}", status_code=204, response_class=Response,
               summary="Remove member")
def remove_member(org_id: OrgId, user_id: UserId, caller: FullCaller, db: DbSession) -> Response:
    """Remove a member by user id."""
    projects.remove_member(db, caller, _org(org_id), user_id=_user(user_id))
    return Response(status_code=204)


@router.put("/organizations/{orgId}/members/{userId}/role", response_model=OrganizationMemberRead,
            summary="Update role")
def update_role(org_id: OrgId, user_id: UserId, body: RoleUpdate, caller: FullCaller,
                db: DbSession) -> OrganizationMemberRead:
    """Change a member's role (owners)."""
    return OrganizationMemberRead.of(projects.change_role(db, caller, _org(org_id), _user(user_id), body))


@router.get("/organizations/{orgId}/members/{userId}/permissions", response_model=MemberPermissionsView,
            summary="Get permissions")
def get_permissions(org_id: OrgId, user_id: UserId, caller: FullCaller,
                    db: DbSession) -> MemberPermissionsView:
    """A member's granted and effective permissions."""
    return MemberPermissionsView.of(projects.member_permissions(db, caller, _org(org_id), _user(user_id)))


@router.post("/organizations/{orgId}/members/{userId}/permissions", response_model=MemberPermissionsView,
             summary="Set permission")
def set_permission(org_id: OrgId, user_id: UserId, body: PermissionGrant, caller: FullCaller,
                   db: DbSession) -> MemberPermissionsView:
    """Grant a member a permission from the catalogue (owners)."""
    return MemberPermissionsView.of(projects.grant_permission(db, caller, _org(org_id), _user(user_id), body.key))


@router.delete("/organizations/{orgId}/members/{userId}/permissions/{key}", status_code=204,
               response_class=Response, summary="Remove permission")
def remove_permission(org_id: OrgId, user_id: UserId, key: str, caller: FullCaller,
                      db: DbSession) -> Response:
    """Take a permission back from a member (owners)."""
    projects.revoke_permission(db, caller, _org(org_id), _user(user_id), key)
    return Response(status_code=204)


@router.get("/organizations/{orgId}/invites", response_model=list[InviteRead], summary="List invites")
def list_invites(org_id: OrgId, caller: FullCaller, db: DbSession) -> list[InviteRead]:
    """The organization's pending invites."""
    return [InviteRead.of(i) for i in projects.pending_invitations(db, caller, _org(org_id))]


@router.delete("/organizations/{orgId}/invites/{inviteId}", status_code=204, response_class=Response,
               summary="Delete invite")
def delete_invite(org_id: OrgId, invite_id: InviteId, caller: FullCaller, db: DbSession) -> Response:
    """Cancel an invite that was not accepted."""
    projects.cancel_invitation(db, caller, _org(org_id), path_id(invite_id, "invite"))
    return Response(status_code=204)


@router.post("/invites/{token}/accept", response_model=InviteAccepted, summary="Accept invite")
def accept_invite(token: str, caller: FullCaller, db: DbSession) -> InviteAccepted:
    """Join the organization an invite sent to the caller's email is for."""
    return InviteAccepted.of(projects.accept_invitation(db, caller, token))


@router.get("/permissions", response_model=list[PermissionEntry], summary="List all available permissions")
def list_permissions(caller: AuthedCaller) -> list[PermissionEntry]:
    """The permission catalogue."""
    return [PermissionEntry.of(p) for p in projects.permission_catalogue()]
