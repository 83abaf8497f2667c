"""How /api/me is read: the user, their projects with their role in each, and the default project's balance,
in one statement.

Why one statement, built once at import: GET /api/me is the most requested authenticated read, and three
ORM queries (the user, the memberships, the balance) cost most of its time in SQLAlchemy, not in the
database. The statement reads Core columns, so no ORM object is loaded and the compiled form is reused.
The rules are those of the services it stands in for: a token fenced to one project sees that project
only and its default project is that one; otherwise the default project is the user's personal one; a
missing user is an invalid credential, a missing default project or wallet a 404.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Connection, Select, and_, bindparam, select

from cloudlet.auth.models import User
from cloudlet.billing.models import LedgerEntry, Pool, Wallet
from cloudlet.kit.errors import NotFound, Unauthenticated
from cloudlet.projects.models import Membership, Project, ProjectType, Role


@dataclass(frozen=True, slots=True)
class ProjectRole:
    """One of the user's projects and the user's role in it."""

    id: int
    name: str
    type: ProjectType
    role: Role


@dataclass(frozen=True, slots=True)
class MeView:
    """What GET /api/me shows: the user, the default project's main balance (minor units), the projects."""

    user_id: int
    email: str
    name: str
    onboarded: bool
    wallet_balance: int
    projects: list[ProjectRole]


_users = User.__table__.c
_members = Membership.__table__.c
_projects = Project.__table__.c
_wallets = Wallet.__table__.c
_entries = LedgerEntry.__table__.c


def _statement(fenced: bool) -> Select[Any]:
    fence = bindparam("fence", type_=_members.project_id.type)
    default_project: ColumnElement[int | None] = fence if fenced else _users.personal_project_id
    main_wallet = and_(_wallets.project_id == default_project, _wallets.pool == Pool.MAIN)
    wallet = select(_wallets.id).where(main_wallet).scalar_subquery()
    balance = (select(_entries.balance_after_cents)
               .join_from(LedgerEntry.__table__, Wallet.__table__, _wallets.id == _entries.wallet_id)
               .where(main_wallet)
               .order_by(_entries.seq.desc())
               .limit(1)
               .scalar_subquery())
    joined = _members.user_id == _users.id
    if fenced:
        joined = and_(joined, _members.project_id == fence)
    return (
        select(_users.email, _users.name, _users.onboarded, default_project.label("default_project"),
               wallet.label("wallet_id"), balance.label("balance"),
               _projects.id, _projects.name, _projects.type, _members.role)
        .select_from(User.__table__.outerjoin(Membership.__table__, joined)
                     .outerjoin(Project.__table__, _projects.id == _members.project_id))
        .where(_users.id == bindparam("user_id"))
        .order_by(_projects.id)
    )


_UNFENCED = _statement(fenced=False)
_FENCED = _statement(fenced=True)


def me(connection: Connection, user_id: int, fence: int | None) -> MeView:
    """The user's /api/me view (only the project `fence`, when the credential is fenced to one); one query."""
    rows: Sequence[Any]  # the statement's ten columns, by position
    if fence is None:
        rows = connection.execute(_UNFENCED, {"user_id": user_id}).all()
    else:
        rows = connection.execute(_FENCED, {"user_id": user_id, "fence": fence}).all()
    if not rows:  # deleted since its credential was cached
        raise Unauthenticated("API key is invalid or malformed.", code="INVALID_API_KEY")
    email, name, onboarded, default_project, wallet_id, balance = rows[0][:6]
    if default_project is None:
        raise NotFound("project")
    if wallet_id is None:
        raise NotFound("wallet", default_project)
    return MeView(user_id=user_id, email=email, name=name, onboarded=onboarded, wallet_balance=int(balance or 0),
                  projects=[ProjectRole(id=row[6], name=row[7], type=row[8], role=row[9])
                            for row in rows if row[6] is not None])
