"""Primary surface: GET /api/me, the user and the projects they belong to (Evorxa's auth section).

Any valid credential may call it. A token fenced to one project sees only that project.
`wallet_balance` is the balance, in minor units, of the wallet of the caller's default project
(the personal one, or the project a token is fenced to).
"""

from __future__ import annotations

from fastapi import APIRouter

from cloudlet.billing import service as billing
from cloudlet.projects import service as projects
from cloudlet.surfaces.deps import AppSettings, AuthedCaller, DbSession
from cloudlet.surfaces.primary.team_schemas import MeRead

router = APIRouter(prefix="/api", tags=["primary"])


@router.get("/me", response_model=MeRead, summary="The user and their projects, with their role in each")
def me(caller: AuthedCaller, db: DbSession, settings: AppSettings) -> MeRead:
    """The caller, its wallet balance and its projects."""
    return MeRead.of(caller.user, projects.projects_of(db, caller),
                     billing.balance_cents(db, settings, caller.project_id))
