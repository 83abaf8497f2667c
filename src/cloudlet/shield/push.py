"""A firewall push as an action: `firewall_push` on a node, opened by the change that needs it (service._changing,
once per node and transaction), run by the action engine once the change commits.

Its task, firewall_apply, gives the node its whole table as it stands when the task's turn comes (one push per
node at a time: shield/workflows.apply_node), so pushes that queue up behind one another coalesce: a later
one finds the table already written and only records that its revisions are in force. The node's refusal
fails the task with the node's reason; the rules it carried show `error` with it and nothing is half-applied
(the table is swapped in one nft transaction). The conclusion records how the push ended (firewall_record).
"""

from __future__ import annotations

from cloudlet.actions.registry import Procedure, task
from cloudlet.actions.work import NodeWork
from cloudlet.drivers.base import GuestFailed
from cloudlet.shield import service, workflows

APPLY_SECONDS = 120.0  # writing and reading back a node's table: nft's own calls are bounded at 30 s each
RECORD_TASK = service.PUSH_TASKS[-1]


@task(APPLY_SECONDS)
def firewall_apply(work: NodeWork) -> str:
    """Give the node its whole firewall table (or see that it already holds it)."""
    error = workflows.apply_node(work.db, work.settings, work.drivers, work.node_id, unless_same=True)
    if error is not None:
        raise GuestFailed(f"the node refused its firewall table: {error}")
    with work.db.session(write=False) as session:
        firewalls, _revisions = service.node_firewalls(session, work.settings, work.node_id)
    rules = sum(len(wall.rules) for wall in firewalls)
    return f"the node enforces {len(firewalls)} addresses' firewalls ({rules} rules)"


def conclude_push(work: NodeWork, task: str | None, reason: str | None) -> None:
    """Record how the push ended: its last task, then the action's end."""
    work.end_unheld(RECORD_TASK, "the firewalls' revisions are recorded as in force", task, reason)


PROCEDURES = (  # registered by app.py
    Procedure(service.PUSH_COMMAND, service.PUSH_TASKS, (firewall_apply,), conclude_push, work=NodeWork),
)
