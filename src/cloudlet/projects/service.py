"""Projects and teams: personal projects, membership checks, invitations and permissions."""

from __future__ import annotations

from sqlalchemy.orm import Session

from cloudlet.kit.errors import NotFound
from cloudlet.projects import repository
from cloudlet.projects.models import Membership, Project, ProjectType, Role


def create_personal_project(session: Session, user_id: int, name: str = "default") -> Project:
    """Make the personal project every new user gets, with the user as its owner."""
    project = repository.insert_project(session, Project(name=name, type=ProjectType.PERSONAL, created_by=user_id))
    repository.insert_membership(session, Membership(project_id=project.id, user_id=user_id, role=Role.OWNER))
    return project


def personal_project_id(session: Session, user_id: int) -> int:
    """The id of the user's personal project."""
    project_id = repository.personal_project_id(session, user_id)
    if project_id is None:
        raise NotFound("project")
    return project_id


def memberships(session: Session, user_id: int) -> list[tuple[Membership, Project]]:
    """The user's projects with the user's membership of each."""
    return repository.memberships_of_user(session, user_id)


def require_membership(session: Session, user_id: int, project_id: int, *, fence: int | None = None) -> Membership:
    """The caller's membership of a project; not a member (or fenced elsewhere) reads as not found."""
    found = repository.membership(session, project_id, user_id)
    if found is None or (fence is not None and fence != project_id):
        raise NotFound("project", project_id)
    return found
