"""Projects and teams: personal projects, membership checks, invitations and permissions.

Every function that takes an `actor` treats a project the actor is not in (or a project other
than the one its credential is fenced to) as not found, so a stranger learns nothing.
`can` is the one place that decides what a member may do.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta

from sqlalchemy.orm import Session

from cloudlet.auth.models import User, UserStatus
from cloudlet.config import Settings
from cloudlet.kit import clock
from cloudlet.kit.errors import Conflict, Forbidden, Gone, Invalid, NotFound, RateLimited
from cloudlet.kit.ids import digest, new_secret
from cloudlet.kit.ratelimit import RateLimiter, rule
from cloudlet.mail import service as mail
from cloudlet.projects import repository
from cloudlet.projects.models import Invitation, InvitationStatus, Membership, Project, ProjectType, Role
from cloudlet.projects.schemas import (
    PERMISSION_DESCRIPTIONS,
    AcceptedInvitation,
    Actor,
    InvitationCreate,
    InvitationMatch,
    InvitationPreview,
    InvitationRead,
    InvitationState,
    Locale,
    MemberActor,
    MemberContact,
    MemberPermissionsRead,
    MemberRead,
    MembershipRead,
    Permission,
    PermissionRead,
    ProjectCreate,
    ProjectRead,
    ProjectRoleRead,
    ProjectUpdate,
    RoleUpdate,
    TeamRead,
    UserBrief,
)


class WrongEmail(Forbidden):
    """The invitation was sent to another address than the signed-in account's."""

    reason = "wrong_email"


# --- the basics other domains use -------------------------------------------------------------


def create_personal_project(session: Session, user_id: int, name: str = "default") -> Project:
    """Make the personal project every new user gets, with the user as its owner."""
    project = repository.insert_project(session, Project(name=name, type=ProjectType.PERSONAL, created_by=user_id))
    repository.insert_membership(session, Membership(project_id=project.id, user_id=user_id, role=Role.OWNER))
    return project


def project_exists(session: Session, project_id: int) -> bool:
    """Whether a project exists (for operators and jobs, without a membership check)."""
    return repository.get_project(session, project_id) is not None


def memberships(session: Session, user_id: int) -> list[tuple[Membership, Project]]:
    """The user's projects with the user's membership of each."""
    return repository.memberships_of_user(session, user_id)


def require_membership(session: Session, user_id: int, project_id: int, *, fence: int | None = None) -> Membership:
    """The caller's membership of a project; not a member (or fenced elsewhere) reads as not found."""
    if fence is not None and fence != project_id:
        raise NotFound("project", project_id)
    found = repository.membership(session, project_id, user_id)
    if found is None:
        raise NotFound("project", project_id)
    return found


def acting_member(session: Session, user_id: int, project_id: int) -> Actor:
    """The user acting in the project without a request (work done on their behalf), fenced to it: NotFound once
    they are no longer a member, Forbidden while their account is suspended."""
    require_membership(session, user_id, project_id)
    user = repository.get_user(session, user_id)
    if user is None:
        raise NotFound("project", project_id)
    if user.status is UserStatus.SUSPENDED:
        raise Forbidden("The account is suspended.", code="ACCOUNT_SUSPENDED")
    return MemberActor(user, project_id)


def can(session: Session, project_id: int, user_id: int, key: Permission | str) -> bool:
    """Whether the user may do what `key` guards in the project: owners always, members when granted it."""
    wanted = Permission(key)  # an unknown key is a programming error, not a "no"
    found = repository.role_and_grant(session, project_id, user_id, wanted.value)
    if found is None:
        return False
    role, granted = found
    return role is Role.OWNER or granted


def permission_catalogue() -> list[PermissionRead]:
    """Every permission an owner can grant a member, with what it allows."""
    return [PermissionRead(key=p, description=PERMISSION_DESCRIPTIONS[p]) for p in Permission]


# --- projects -----------------------------------------------------------------------------------


def _role_read(membership: Membership, project: Project) -> ProjectRoleRead:
    return ProjectRoleRead(id=project.id, name=project.name, type=project.type, created_at=project.created_at,
                           role=membership.role)


def projects_of(session: Session, actor: Actor) -> list[ProjectRoleRead]:
    """The actor's projects with its role in each (only the fenced one for a fenced credential); one query."""
    rows = repository.memberships_of_user(session, actor.user.id, only=actor.project_scope)
    return [_role_read(m, p) for m, p in rows]


def in_reach(session: Session, actor: Actor, project_id: int | None = None) -> list[int]:
    """The ids of the projects the actor may act in (the fenced one for a fenced credential), or of the one named,
    once the actor is found a member of it."""
    if project_id is not None:
        require_membership(session, actor.user_id, project_id, fence=actor.project_scope)
        return [project_id]
    if actor.project_scope is not None:
        return [actor.project_scope]
    return [project.id for _membership, project in memberships(session, actor.user_id)]


def _enter(session: Session, actor: Actor, project_id: int, *, lock: bool = False) -> tuple[Membership, Project]:
    fence = actor.project_scope
    found = None if fence is not None and fence != project_id else \
        repository.membership_with_project(session, project_id, actor.user.id, lock=lock)
    if found is None:
        raise NotFound("project", project_id)
    return found


def _require_owner(membership: Membership, message: str) -> None:
    if membership.role is not Role.OWNER:
        raise Forbidden(message)


def _require(session: Session, membership: Membership, key: Permission, message: str) -> None:
    if not can(session, membership.project_id, membership.user_id, key):
        raise Forbidden(message)


def project_of(session: Session, actor: Actor, project_id: int) -> ProjectRoleRead:
    """One of the actor's projects with its role in it."""
    return _role_read(*_enter(session, actor, project_id))


def create_team_project(session: Session, actor: Actor, data: ProjectCreate) -> ProjectRoleRead:
    """Make a team project with the actor as its owner."""
    if actor.project_scope is not None:
        raise Forbidden("This token is limited to one project and cannot create others.")
    project = repository.insert_project(session, Project(name=data.name, type=ProjectType.TEAM,
                                                         created_by=actor.user.id))
    membership = repository.insert_membership(session, Membership(project_id=project.id, user_id=actor.user.id,
                                                                  role=Role.OWNER))
    return _role_read(membership, project)


def rename_project(session: Session, actor: Actor, project_id: int, data: ProjectUpdate) -> ProjectRoleRead:
    """Give a project a new name (owners only)."""
    membership, project = _enter(session, actor, project_id)
    _require_owner(membership, "Only project owners can rename the project.")
    project.name = data.name
    session.flush()
    return _role_read(membership, project)


def delete_project(session: Session, actor: Actor, project_id: int) -> None:
    """Delete a team project and everything in it (owners only; a personal project stays)."""
    membership, project = _enter(session, actor, project_id, lock=True)
    _require_owner(membership, "Only project owners can delete the project.")
    if project.type is ProjectType.PERSONAL:
        raise Invalid(None, "A personal project cannot be deleted.")
    if not repository.delete_project(session, project):
        raise Conflict("The project still holds resources that must be deleted first.")


def release_user(session: Session, user_id: int) -> None:
    """Prepare a user's deletion: remove the projects only they belong to, personal one included.

    Refused (Conflict, nothing removed) while the user is the only owner of a project others still
    use, or while a project of theirs holds resources (a wallet with entries, servers...).
    """
    alone: list[Project] = []
    for membership, project in repository.memberships_of_user(session, user_id):
        if repository.count_members(session, project.id) == 1:
            alone.append(project)
        elif membership.role is Role.OWNER and repository.count_owners(session, project.id) == 1:
            raise Conflict(f"The user is the only owner of the project {project.name!r}; "
                           "make another member an owner first.", code="LAST_OWNER")
    for project in alone:
        if not repository.delete_project(session, project):
            raise Conflict(f"The project {project.name!r} still holds resources (a wallet with entries, "
                           "servers...); they must be settled first.", code="PROJECT_NOT_EMPTY")


# --- members ------------------------------------------------------------------------------------


def _member_read(membership: Membership, user: User, granted: list[str]) -> MemberRead:
    return MemberRead(id=membership.id, project_id=membership.project_id, role=membership.role,
                      user=UserBrief.model_validate(user), permissions=[Permission(k) for k in granted],
                      joined_at=membership.created_at)


def _members(session: Session, project_id: int) -> list[MemberRead]:
    rows = repository.members_with_users(session, project_id)
    granted = repository.grants(session, [m.id for m, _ in rows])
    return [_member_read(m, u, granted[m.id]) for m, u in rows]


def _invitation_state(invitation: Invitation) -> InvitationState:
    if invitation.status is InvitationStatus.PENDING and invitation.expires_at <= clock.now():
        return InvitationState.EXPIRED
    return InvitationState(invitation.status.value)


def _invitation_read(invitation: Invitation, inviter: User | None) -> InvitationRead:
    return InvitationRead(id=invitation.id, project_id=invitation.project_id, email=invitation.email,
                          role=invitation.role, state=_invitation_state(invitation),
                          expires_at=invitation.expires_at, created_at=invitation.created_at,
                          inviter=UserBrief.model_validate(inviter) if inviter is not None else None)


def _pending(session: Session, project_id: int) -> list[InvitationRead]:
    return [_invitation_read(i, u) for i, u in repository.pending_invitations(session, project_id, clock.now())]


def team(session: Session, actor: Actor, project_id: int) -> TeamRead:
    """The project's members and pending invitations, for any member of it."""
    membership, project = _enter(session, actor, project_id)
    return TeamRead(project=ProjectRead.model_validate(project), current_user_role=membership.role,
                    members=_members(session, project_id), invitations=_pending(session, project_id))


def members(session: Session, actor: Actor, project_id: int) -> list[MemberRead]:
    """The project's members with their explicit permissions, for any member of it."""
    _enter(session, actor, project_id)
    return _members(session, project_id)


def _target(session: Session, project_id: int, *, membership_id: int | None = None,
            user_id: int | None = None) -> tuple[Membership, User]:
    found = repository.member_with_user(session, project_id, membership_id=membership_id, user_id=user_id)
    if found is None:
        raise NotFound("member", membership_id if membership_id is not None else user_id)
    return found


def _keep_an_owner(session: Session, target: Membership, message: str) -> None:
    if target.role is Role.OWNER and repository.count_owners(session, target.project_id) <= 1:
        raise Invalid(None, message)


def _keep_the_personal_owner(project: Project, target: Membership) -> None:
    # Everything that acts "in your own project" (Caller.project_id) relies on this membership.
    if project.type is ProjectType.PERSONAL and target.user_id == project.created_by:
        raise Invalid(None, "The user a personal project belongs to always stays its owner.")


def remove_member(session: Session, actor: Actor, project_id: int, *, membership_id: int | None = None,
                  user_id: int | None = None) -> None:
    """Remove a member, by membership id or by user id.

    Owners may remove anyone; a member granted members:manage may remove members; anyone may leave.
    The last owner always stays.
    """
    mine, project = _enter(session, actor, project_id, lock=True)
    target, _ = _target(session, project_id, membership_id=membership_id, user_id=user_id)
    if target.id != mine.id:
        if target.role is Role.OWNER:
            _require_owner(mine, "Only project owners can remove members.")
        else:
            _require(session, mine, Permission.MEMBERS_MANAGE, "Only project owners can remove members.")
    _keep_an_owner(session, target, "Cannot remove the last remaining owner.")
    _keep_the_personal_owner(project, target)
    repository.delete_membership(session, target)


def change_role(session: Session, actor: Actor, project_id: int, user_id: int, data: RoleUpdate) -> MemberRead:
    """Make a member an owner or an owner a member (owners only; the last owner stays one)."""
    mine, project = _enter(session, actor, project_id, lock=True)
    _require_owner(mine, "Only project owners can change roles.")
    target, user = _target(session, project_id, user_id=user_id)
    if data.role is not target.role:
        if data.role is Role.MEMBER:
            _keep_an_owner(session, target, "A project must keep at least one owner.")
            _keep_the_personal_owner(project, target)
        target.role = data.role
        session.flush()
    return _member_read(target, user, repository.grants(session, [target.id])[target.id])


def _permissions_read(session: Session, target: Membership) -> MemberPermissionsRead:
    granted = [Permission(k) for k in repository.grants(session, [target.id])[target.id]]
    effective = list(Permission) if target.role is Role.OWNER else granted
    return MemberPermissionsRead(user_id=target.user_id, role=target.role, granted=granted, effective=effective)


def member_permissions(session: Session, actor: Actor, project_id: int, user_id: int) -> MemberPermissionsRead:
    """A member's explicit permissions and effective ones, for any member of the project."""
    _enter(session, actor, project_id)
    target, _ = _target(session, project_id, user_id=user_id)
    return _permissions_read(session, target)


def grant_permission(session: Session, actor: Actor, project_id: int, user_id: int,
                     key: Permission) -> MemberPermissionsRead:
    """Grant a member a permission (owners only); granting one already held changes nothing."""
    mine, _ = _enter(session, actor, project_id)
    _require_owner(mine, "Only project owners can change permissions.")
    target, _ = _target(session, project_id, user_id=user_id)
    repository.insert_grant_once(session, target.id, key.value)
    return _permissions_read(session, target)


def revoke_permission(session: Session, actor: Actor, project_id: int, user_id: int, key: str) -> None:
    """Take a permission back from a member (owners only)."""
    mine, _ = _enter(session, actor, project_id)
    _require_owner(mine, "Only project owners can change permissions.")
    target, _ = _target(session, project_id, user_id=user_id)
    grant = repository.find_grant(session, target.id, key)
    if grant is None:
        raise NotFound("permission", key)
    repository.delete_grant(session, grant)


# --- invitations --------------------------------------------------------------------------------

_SUBJECTS = {
    Locale.EN: "{inviter} invited you to join {project}",
    Locale.AR: "دعاك {inviter} للانضمام إلى {project}",
}
_BODIES = {
    Locale.EN: (
        "Hello,\n\n{inviter} ({inviter_email}) invited you to join the project \"{project}\" as {role}.\n\n"
        "Accept the invitation here, signed in as {email}:\n{link}\n\n"
        "The invitation expires on {expires} (UTC). If you did not expect it, ignore this message.\n"
    ),
    Locale.AR: (
        "مرحبًا،\n\nدعاك {inviter} ({inviter_email}) للانضمام إلى المشروع \"{project}\" بصفة {role}.\n\n"  # noqa: RUF001  # Arabic text, not a spoofed Latin "l"
        "اقبل الدعوة من هنا بعد تسجيل الدخول بالبريد {email}:\n{link}\n\n"
        "تنتهي صلاحية الدعوة في {expires} (بالتوقيت العالمي). إن لم تكن تتوقعها فتجاهل هذه الرسالة.\n"
    ),
}
_ROLE_NAMES = {
    Locale.EN: {Role.OWNER: "an owner", Role.MEMBER: "a member"},
    Locale.AR: {Role.OWNER: "مالك", Role.MEMBER: "عضو"},
}


def _limit_invitations(limiter: RateLimiter, settings: Settings, inviter_id: int, project_id: int) -> None:
    # Every invitation is an email to an address of the inviter's choosing: bound how many one
    # person, and one project, can make the server send.
    for key, limit in ((f"invite:user:{inviter_id}", settings.invitation_rate_per_inviter),
                       (f"invite:project:{project_id}", settings.invitation_rate_per_project)):
        verdict = limiter.hit(key, rule(limit))
        if not verdict.allowed:
            raise RateLimited(f"Too many invitations sent; please retry after {verdict.retry_after} seconds.",
                              retry_after=verdict.retry_after, headers=verdict.headers())


def invite(session: Session, settings: Settings, limiter: RateLimiter, actor: Actor, project_id: int,
           data: InvitationCreate) -> InvitationRead:
    """Invite an email address to the project and email it a link that is valid for invitation_days.

    Owners may invite anyone; a member granted members:manage may invite members. Invitations are
    rate limited per inviter and per project (429).
    """
    mine, project = _enter(session, actor, project_id, lock=True)
    _require(session, mine, Permission.MEMBERS_MANAGE, "Only project owners can invite teammates.")
    if data.role is Role.OWNER:
        _require_owner(mine, "Only project owners can invite owners.")
    email = data.email.strip().lower()
    if repository.member_by_email(session, project_id, email) is not None:
        raise Invalid("email", "That user is already a project member.")
    now = clock.now()
    if repository.active_invitation(session, project_id, email, now) is not None:
        raise Conflict("An active invitation already exists for that email.")
    _limit_invitations(limiter, settings, actor.user.id, project_id)
    token = new_secret()
    invitation = repository.insert_invitation(session, Invitation(
        project_id=project_id, email=email, role=data.role, locale=data.locale.value, token_hash=digest(token),
        status=InvitationStatus.PENDING, invited_by=actor.user.id,
        expires_at=now + timedelta(days=settings.invitation_days),
    ))
    link = f"{settings.public_url.rstrip('/')}/{data.locale.value}/invitations/{token}"
    inviter = actor.user
    words = {"inviter": inviter.name or inviter.email, "inviter_email": inviter.email, "project": project.name,
             "role": _ROLE_NAMES[data.locale][data.role], "email": email, "link": link,
             "expires": invitation.expires_at.strftime("%Y-%m-%d %H:%M")}
    mail.queue(session, to=email, subject=_SUBJECTS[data.locale].format(**words),
               body=_BODIES[data.locale].format(**words), kind="invitation")
    return _invitation_read(invitation, inviter)


def pending_invitations(session: Session, actor: Actor, project_id: int) -> list[InvitationRead]:
    """The project's pending, unexpired invitations, for any member of it."""
    _enter(session, actor, project_id)
    return _pending(session, project_id)


def cancel_invitation(session: Session, actor: Actor, project_id: int, invitation_id: int) -> None:
    """Cancel an invitation that was not accepted (owners, or members granted members:manage)."""
    mine, _ = _enter(session, actor, project_id, lock=True)
    invitation = repository.invitation_in_project(session, project_id, invitation_id)
    if invitation is None:
        raise NotFound("invitation", invitation_id)
    _require(session, mine, Permission.MEMBERS_MANAGE, "Only project owners can cancel invitations.")
    if invitation.status is InvitationStatus.ACCEPTED:
        raise Invalid(None, "Accepted invitations cannot be cancelled.")
    if invitation.role is Role.OWNER:
        _require_owner(mine, "Only project owners can cancel invitations.")
    invitation.status = InvitationStatus.CANCELLED
    session.flush()


def _presented(session: Session, actor: Actor, token: str, *, lock: bool = False) -> Invitation:
    invitation = repository.invitation_by_hash(session, digest(token), lock=lock) if token else None
    # A credential fenced to one project acts in that project only; joining another is beyond it.
    if invitation is None or (actor.project_scope is not None and actor.project_scope != invitation.project_id):
        raise NotFound("invitation")
    return invitation


def _refuse_unusable(invitation: Invitation) -> None:
    state = _invitation_state(invitation)
    if state is InvitationState.CANCELLED:
        raise Gone("This invitation has been cancelled.", reason=state.value)
    if state is InvitationState.ACCEPTED:
        raise Gone("This invitation has already been accepted.", reason=state.value)
    if state is InvitationState.EXPIRED:
        raise Gone("This invitation has expired.", reason=state.value)


def _project(session: Session, project_id: int) -> Project:
    project = repository.get_project(session, project_id)
    if project is None:
        raise NotFound("invitation")
    return project


def preview_invitation(session: Session, actor: Actor, token: str) -> InvitationPreview:
    """A pending invitation seen by the signed-in account: "pending" if it is theirs, else "wrong_email"."""
    invitation = _presented(session, actor, token)
    _refuse_unusable(invitation)
    email = actor.user.email
    return InvitationPreview(
        match=InvitationMatch.PENDING if email == invitation.email else InvitationMatch.WRONG_EMAIL,
        current_user_email=email,
        invitation=_invitation_read(invitation, repository.get_user(session, invitation.invited_by)),
        project=ProjectRead.model_validate(_project(session, invitation.project_id)),
    )


def accept_invitation(session: Session, actor: Actor, token: str) -> AcceptedInvitation:
    """Join the project as the invited role, signed in with the invited email.

    Accepting again by the same user answers the same; concurrent accepts make one membership.
    """
    invitation = _presented(session, actor, token, lock=True)
    user = actor.user
    project = _project(session, invitation.project_id)
    if invitation.status is InvitationStatus.ACCEPTED and invitation.accepted_by == user.id:
        # A repeat of the same accept: answer as before, unless the user has since left the project.
        existing = repository.membership(session, invitation.project_id, user.id)
        if existing is None:
            raise Gone("This invitation has already been accepted.", reason=InvitationState.ACCEPTED.value)
        membership = existing
    else:
        _refuse_unusable(invitation)
        if user.email != invitation.email:
            raise WrongEmail("This invitation was sent to a different email address.")
        membership = repository.insert_membership_once(session, invitation.project_id, user.id, invitation.role)
        invitation.status = InvitationStatus.ACCEPTED
        invitation.accepted_by = user.id
        invitation.accepted_at = clock.now()
        session.flush()
    return AcceptedInvitation(project=ProjectRead.model_validate(project),
                              membership=MembershipRead.model_validate(membership))


def owner_emails(session: Session, project_id: int) -> list[str]:
    """The addresses of a project's owners (who hear of what happens to its servers)."""
    return [user.email for member, user in repository.members_with_users(session, project_id)
            if member.role is Role.OWNER]


def member_contacts(session: Session, project_ids: Iterable[int]) -> dict[int, list[MemberContact]]:
    """The active members of each of these projects (suspended accounts hear nothing), in one statement."""
    found: dict[int, list[MemberContact]] = {}
    for project_id, user in repository.members_of_projects(session, sorted(set(project_ids))):
        if user.status is not UserStatus.SUSPENDED:
            found.setdefault(project_id, []).append(MemberContact(email=user.email, admin=user.is_admin))
    return found
