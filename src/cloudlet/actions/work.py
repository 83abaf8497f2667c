"""What an action's tasks work with: ActionWork, which every procedure's work extends (an instance's is
instances/work.py), and NodeWork, that of a node's action (one that holds no instance: a firewall push)."""

from __future__ import annotations

from cloudlet.actions import service
from cloudlet.actions.models import ActionStatus
from cloudlet.config import Settings
from cloudlet.kit.db import Database
from cloudlet.nodes.service import Drivers


class ActionWork:
    """The database, the settings, the node drivers and the action. With call_seconds set (how an action ends),
    the node calls of its clean-up give up after that many seconds."""

    def __init__(self, db: Database, settings: Settings, drivers: Drivers, action_id: int,
                 call_seconds: float | None = None) -> None:
        self.db = db
        self.settings = settings
        self.drivers = drivers
        self.action_id = action_id
        self.call_seconds = call_seconds

    def end_unheld(self, last_task: str, detail: str, task: str | None, reason: str | None) -> None:
        """Record how an action that holds nothing ended: its failed task and the error, or its last task (with
        detail) and success (nothing when it has ended already)."""
        with self.db.session() as session:
            action = service.running_action(session, self.action_id)
            if action is None:
                return
            if task is not None and reason is not None:
                service.fail_task(session, self.action_id, task, reason)
                service.finish(action, None, ActionStatus.ERROR, reason[:4000])
                return
            service.complete_task(session, self.action_id, last_task, detail)
            service.finish(action, None, ActionStatus.SUCCESS)


class NodeWork(ActionWork):
    """An action's work, and the node it works on."""

    def __init__(self, db: Database, settings: Settings, drivers: Drivers, action_id: int,
                 call_seconds: float | None = None) -> None:
        super().__init__(db, settings, drivers, action_id, call_seconds)
        with db.session(write=False) as session:
            self.node_id = service.node_of(session, action_id)
