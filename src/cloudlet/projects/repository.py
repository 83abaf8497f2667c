"""SQL for projects, memberships, member permissions and invitations."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased

from cloudlet.auth.models import User
from cloudlet.projects.models import (
    Invitation,
    InvitationStatus,
    MemberPermission,
    Membership,
    Project,
    Role,
)


def insert_project(session: Session, project: Project) -> Project:
    """Add a project and give it its id."""
    session.add(project)
    session.flush()
    return project


def insert_membership(session: Session, membership: Membership) -> Membership:
    """Add a membership and give it its id."""
    session.add(membership)
    session.flush()
    return membership


def insert_membership_once(session: Session, project_id: int, user_id: int, role: Role) -> Membership:
    """The user's membership of the project: a new one, or the one a concurrent request just made."""
    existing = membership(session, project_id, user_id)
    if existing is not None:
        return existing
    try:
        with session.begin_nested():
            made = Membership(project_id=project_id, user_id=user_id, role=role)
            session.add(made)
        return made
    except IntegrityError:
        # Another transaction inserted the same (project, user) first; the unique constraint
        # turned the race into this error, and its row is the one to use.
        found = membership(session, project_id, user_id)
        if found is None:
            raise
        return found


def memberships_of_user(session: Session, user_id: int, *, only: int | None = None) -> list[tuple[Membership, Project]]:
    """Every project the user belongs to (or just `only`), with the membership, oldest project first."""
    query = (
        select(Membership, Project)
        .join(Project, Project.id == Membership.project_id)
        .where(Membership.user_id == user_id)
        .order_by(Project.id)
    )
    if only is not None:
        query = query.where(Membership.project_id == only)
    return [(m, p) for m, p in session.execute(query)]


def membership(session: Session, project_id: int, user_id: int) -> Membership | None:
    """The user's membership of the project, if any."""
    return session.scalars(
        select(Membership).where(Membership.project_id == project_id, Membership.user_id == user_id)
    ).first()


def membership_with_project(session: Session, project_id: int, user_id: int,
                            *, lock: bool = False) -> tuple[Membership, Project] | None:
    """The user's membership of the project and the project, in one query; lock holds the project row."""
    query = (
        select(Membership, Project)
        .join(Project, Project.id == Membership.project_id)
        .where(Membership.project_id == project_id, Membership.user_id == user_id)
    )
    if lock:
        # Changes to owners and invitations of one project run one at a time, so two requests
        # cannot each remove "the other" owner, or each send "the only" invitation.
        query = query.with_for_update(of=Project)
    row = session.execute(query).first()
    return (row[0], row[1]) if row is not None else None


def delete_project(session: Session, project: Project) -> bool:
    """Remove a project; the database cascades to its memberships, invitations and fenced tokens.

    False (and nothing removed) when another table still refers to the project without cascading.
    """
    try:
        with session.begin_nested():
            session.execute(delete(Project).where(Project.id == project.id))
    except IntegrityError:
        return False
    session.expunge(project)
    return True


def members_of_projects(session: Session, project_ids: list[int]) -> list[tuple[int, User]]:
    """(project id, user) of every member of these projects, in one statement."""
    if not project_ids:
        return []
    rows = session.execute(select(Membership.project_id, User).join(User, User.id == Membership.user_id)
                           .where(Membership.project_id.in_(project_ids)).order_by(Membership.id))
    return [(project_id, user) for project_id, user in rows]


def members_with_users(session: Session, project_id: int) -> list[tuple[Membership, User]]:
    """A project's members with their users, owners first, then by when they joined."""
    rows = session.execute(
        select(Membership, User)
        .join(User, User.id == Membership.user_id)
        .where(Membership.project_id == project_id)
        .order_by(Membership.role != Role.OWNER, Membership.id)
    )
    return [(m, u) for m, u in rows]


def member_with_user(session: Session, project_id: int, *, membership_id: int | None = None,
                     user_id: int | None = None) -> tuple[Membership, User] | None:
    """One member of the project with their user, by membership id or by user id."""
    query = (select(Membership, User).join(User, User.id == Membership.user_id)
             .where(Membership.project_id == project_id))
    if membership_id is not None:
        query = query.where(Membership.id == membership_id)
    if user_id is not None:
        query = query.where(Membership.user_id == user_id)
    row = session.execute(query).first()
    return (row[0], row[1]) if row is not None else None


def member_by_email(session: Session, project_id: int, email: str) -> Membership | None:
    """The membership of the user with this (lower-cased) email, if they are in the project."""
    return session.scalars(
        select(Membership).join(User, User.id == Membership.user_id)
        .where(Membership.project_id == project_id, User.email == email)
    ).first()


def delete_membership(session: Session, member: Membership) -> None:
    """Remove a membership; its explicit permissions go with it."""
    session.execute(delete(MemberPermission).where(MemberPermission.membership_id == member.id))
    session.delete(member)
    session.flush()


def count_members(session: Session, project_id: int) -> int:
    """How many members a project has."""
    return int(session.scalar(select(func.count()).select_from(Membership)
                              .where(Membership.project_id == project_id)) or 0)


def count_owners(session: Session, project_id: int) -> int:
    """How many owners the project has."""
    return session.scalar(
        select(func.count()).select_from(Membership)
        .where(Membership.project_id == project_id, Membership.role == Role.OWNER)
    ) or 0


def role_and_grant(session: Session, project_id: int, user_id: int, key: str) -> tuple[Role, bool] | None:
    """The user's role in the project and whether they hold the key explicitly, in one query."""
    row = session.execute(
        select(Membership.role, MemberPermission.id)
        .outerjoin(MemberPermission, (MemberPermission.membership_id == Membership.id) & (MemberPermission.key == key))
        .where(Membership.project_id == project_id, Membership.user_id == user_id)
    ).first()
    return (row[0], row[1] is not None) if row is not None else None


def grants(session: Session, membership_ids: list[int]) -> dict[int, list[str]]:
    """The explicit permission keys of each of these memberships."""
    found: dict[int, list[str]] = {m: [] for m in membership_ids}
    if not membership_ids:
        return found
    rows = session.execute(
        select(MemberPermission.membership_id, MemberPermission.key)
        .where(MemberPermission.membership_id.in_(membership_ids))
        .order_by(MemberPermission.key)
    )
    for membership_id, key in rows:
        found[membership_id].append(key)
    return found


def find_grant(session: Session, membership_id: int, key: str) -> MemberPermission | None:
    """One explicit permission of a membership."""
    return session.scalars(
        select(MemberPermission).where(MemberPermission.membership_id == membership_id, MemberPermission.key == key)
    ).first()


def insert_grant_once(session: Session, membership_id: int, key: str) -> None:
    """Grant a key to a membership; granting one that is already held (even concurrently) is a no-op."""
    if find_grant(session, membership_id, key) is not None:
        return
    try:
        with session.begin_nested():
            session.add(MemberPermission(membership_id=membership_id, key=key))
    except IntegrityError:
        if find_grant(session, membership_id, key) is None:
            raise


def delete_grant(session: Session, grant: MemberPermission) -> None:
    """Remove one explicit permission."""
    session.delete(grant)
    session.flush()


def insert_invitation(session: Session, invitation: Invitation) -> Invitation:
    """Add an invitation and give it its id."""
    session.add(invitation)
    session.flush()
    return invitation


def active_invitation(session: Session, project_id: int, email: str, now: datetime) -> Invitation | None:
    """A pending, unexpired invitation of the project for this email."""
    return session.scalars(
        select(Invitation).where(Invitation.project_id == project_id, Invitation.email == email,
                                 Invitation.status == InvitationStatus.PENDING, Invitation.expires_at > now)
    ).first()


def pending_invitations(session: Session, project_id: int, now: datetime) -> list[tuple[Invitation, User | None]]:
    """A project's pending, unexpired invitations with who sent them, oldest first."""
    inviter = aliased(User)
    rows = session.execute(
        select(Invitation, inviter)
        .outerjoin(inviter, inviter.id == Invitation.invited_by)
        .where(Invitation.project_id == project_id, Invitation.status == InvitationStatus.PENDING,
               Invitation.expires_at > now)
        .order_by(Invitation.id)
    )
    return [(i, u) for i, u in rows]


def invitation_in_project(session: Session, project_id: int, invitation_id: int) -> Invitation | None:
    """An invitation by id, if it belongs to the project."""
    return session.scalars(
        select(Invitation).where(Invitation.project_id == project_id, Invitation.id == invitation_id)
    ).first()


def invitation_by_hash(session: Session, token_hash: str, *, lock: bool = False) -> Invitation | None:
    """The invitation whose token has this digest; lock holds its row until the transaction ends."""
    query = select(Invitation).where(Invitation.token_hash == token_hash)
    if lock:
        # Concurrent accepts of one invitation queue here; the second sees the first one's outcome.
        query = query.with_for_update()
    return session.scalars(query).first()


def get_project(session: Session, project_id: int) -> Project | None:
    """A project by id."""
    return session.get(Project, project_id)


def get_user(session: Session, user_id: int | None) -> User | None:
    """A user by id, for the people shown next to an invitation."""
    return session.get(User, user_id) if user_id is not None else None
