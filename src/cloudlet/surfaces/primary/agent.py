"""Primary surface: the AI agent's credit pool (separate from the wallet)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter

from cloudlet.auth.caller import Caller
from cloudlet.billing import service as billing
from cloudlet.billing.schemas import AgentCreditsRead
from cloudlet.surfaces.deps import AppSettings, DbSession, requires
from cloudlet.tokens.abilities import Ability

router = APIRouter(prefix="/api/agent", tags=["primary"])


@router.get("/credits", response_model=AgentCreditsRead, summary="AI agent credits in cents, trial credit included")
def credits(caller: Annotated[Caller, requires(Ability.AGENT_READ)], db: DbSession,
            settings: AppSettings) -> AgentCreditsRead:
    """The pool's balance and how much of it is trial credit still unspent."""
    return billing.agent_credits(db, settings, caller)
