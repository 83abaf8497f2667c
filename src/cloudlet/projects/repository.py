"""SQL for projects, memberships, member permissions and invitations."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from cloudlet.projects.models import Membership, Project, ProjectType, Role


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


def personal_project_id(session: Session, user_id: int) -> int | None:
    """The id of the user's personal project."""
    return session.scalar(
        select(Project.id)
        .join(Membership, Membership.project_id == Project.id)
        .where(Membership.user_id == user_id, Membership.role == Role.OWNER,
               Project.type == ProjectType.PERSONAL, Project.created_by == user_id)
        .order_by(Project.id)
        .limit(1)
    )


def memberships_of_user(session: Session, user_id: int) -> list[tuple[Membership, Project]]:
    """Every project the user belongs to, with the membership, oldest project first."""
    rows = session.execute(
        select(Membership, Project)
        .join(Project, Project.id == Membership.project_id)
        .where(Membership.user_id == user_id)
        .order_by(Project.id)
    )
    return [(m, p) for m, p in rows.tuples()]


def membership(session: Session, project_id: int, user_id: int) -> Membership | None:
    """The user's membership of the project, if any."""
    return session.scalars(
        select(Membership).where(Membership.project_id == project_id, Membership.user_id == user_id)
    ).first()
