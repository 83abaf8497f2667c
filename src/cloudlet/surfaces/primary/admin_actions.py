"""Primary surface, for administrators: list actions and end a stale one.

    GET  /api/admin/actions?running=true     actions newest first (only unfinished ones by default)
    POST /api/admin/actions/{id}/fail        end an unfinished action (202): its workflow is cancelled, its
                                             procedure's clean-up runs, the failure is recorded (with the
                                             optional reason) and its instance is free again

404 for an unknown action, 409 for one that has already ended, 403 for anyone but an administrator. The
ending runs once the answer is sent: the clean-up writes in transactions of its own (and asks the node,
each call bounded by action_cleanup_call_seconds), which must not wait on the request's own transaction.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Path, Query

from cloudlet.actions.schemas import ActionFail, ActionSummary
from cloudlet.instances import workflows
from cloudlet.surfaces.deps import AdminCaller, AppRuntime, DbSession

router = APIRouter(prefix="/api/admin/actions", tags=["primary"])

ActionId = Annotated[int, Path(ge=1, le=2**31 - 1, description="The action's id.")]


@router.get("", response_model=list[ActionSummary], summary="List actions (operators)")
def list_actions(_caller: AdminCaller, db: DbSession,
                 running: Annotated[bool, Query(description="Only actions not finished yet.")] = True,
                 limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[ActionSummary]:
    """Actions newest first, with the instance each one holds (or, for a firewall push, the node it works on)."""
    return workflows.list_actions(db, running_only=running, limit=limit)


@router.post("/{action_id}/fail", status_code=202, response_model=ActionSummary,
             summary="End a stale action (operators)")
def fail_action(action_id: ActionId, _caller: AdminCaller, db: DbSession, runtime: AppRuntime,
                later: BackgroundTasks, body: ActionFail | None = None) -> ActionSummary:
    """Fail an unfinished action through its clean-up and free its instance; the answer is the action before."""
    found = workflows.endable(db, action_id)
    later.add_task(workflows.end_later, runtime.db, runtime.settings, runtime.drivers, action_id,
                   body.reason if body else "")
    return found
