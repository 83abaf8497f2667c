"""Primary surface: GET /api/me, the user and the projects they belong to (Evorxa's auth section).

Any valid credential may call it. A token fenced to one project sees only that project.
`wallet_balance` arrives with the billing work; until then it is left out rather than faked.
"""

from __future__ import annotations

from fastapi import APIRouter

from cloudlet.projects import service as projects
from cloudlet.surfaces.deps import AuthedCaller, DbSession
from cloudlet.surfaces.primary.team_schemas import MeRead

router = APIRouter(prefix="/api", tags=["primary"])


@router.get("/me", response_model=MeRead, summary="The user and their projects, with their role in each")
def me(caller: AuthedCaller, db: DbSession) -> MeRead:
    """The caller and its projects (one query beyond authentication)."""
    return MeRead.of(caller.user, projects.projects_of(db, caller))
