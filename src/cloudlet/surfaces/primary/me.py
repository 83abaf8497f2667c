"""Primary surface: GET /api/me, the user and the projects they belong to (Evorxa's auth section).

Any valid credential may call it. A token fenced to one project sees only that project.
`wallet_balance` is the balance, in minor units, of the wallet of the caller's default project
(the personal one, or the project a token is fenced to).
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from cloudlet.auth import queries
from cloudlet.surfaces.deps import AuthedCaller, Runtime, cached_answer, read
from cloudlet.surfaces.primary.team_schemas import MeProject, MeRead, MeUser

router = APIRouter(prefix="/api", tags=["primary"])


@router.get("/me", response_model=MeRead, summary="The user and their projects, with their role in each")
async def me(caller: AuthedCaller, request: Request) -> Response:
    """The caller, its wallet balance and its projects: one statement in one worker thread, or none.

    Async, and rendered here: a cached credential then costs no thread, and the answer is validated once
    (FastAPI would validate the returned model again against response_model). The rendered answer is kept
    for a second, or until this process commits a write (Runtime.answers), as credentials are.
    """
    runtime: Runtime = request.app.state.runtime  # not a dependency: one less for FastAPI to solve

    async def render() -> bytes:
        view = await read(runtime, queries.me, caller.user_id, caller.project_scope)
        return MeRead(
            user=MeUser(id=view.user_id, email=view.email, name=view.name, wallet_balance=view.wallet_balance,
                        onboarded=view.onboarded),
            projects=[MeProject(id=p.id, name=p.name, type=p.type, current_user_role=p.role)
                      for p in view.projects],
        ).model_dump_json().encode()

    body = await cached_answer(runtime, ("me", caller.user_id, caller.project_scope), render)
    return Response(body, media_type="application/json")
