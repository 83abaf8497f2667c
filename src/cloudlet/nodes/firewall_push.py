"""A node's own firewall pushed as an action: `node_firewall_push`, opened by the rule change that needs it
(nodes/firewall.py, once per node and transaction) and run by the action engine once the change commits.

Its task gives the node its whole `cloudlet_node` table as the rules stand when its turn comes (one push per
node at a time: nodes/workflows.apply_firewall); the node's refusal fails the task with its reason, and the
table, swapped in one nft transaction, is never half-written. The conclusion records how the push ended.
"""

from __future__ import annotations

from cloudlet.actions.registry import Procedure, task
from cloudlet.actions.work import NodeWork
from cloudlet.drivers.base import GuestFailed
from cloudlet.nodes import firewall, workflows

APPLY_SECONDS = 120.0  # writing and reading back the node's table: nft's own calls are bounded at 30 s each
RECORD_TASK = firewall.PUSH_TASKS[-1]


@task(APPLY_SECONDS)
def node_firewall_apply(work: NodeWork) -> str:
    """Give the node its own firewall table."""
    error = workflows.apply_firewall(work.db, work.settings, work.drivers, work.node_id)
    if error is not None:
        raise GuestFailed(f"the node refused its own firewall table: {error}")
    with work.db.session(write=False) as session:
        rules = len(firewall.list_rules(session, work.node_id))
    return f"the node enforces its {rules} firewall rules"


def conclude_push(work: NodeWork, task: str | None, reason: str | None) -> None:
    """Record how the push ended: its last task, then the action's end."""
    work.end_unheld(RECORD_TASK, "the node's own firewall is in force", task, reason)


PROCEDURES = (  # registered by app.py
    Procedure(firewall.PUSH_COMMAND, firewall.PUSH_TASKS, (node_firewall_apply,), conclude_push, work=NodeWork),
)
