"""Webhook delivery as a durable workflow, started right after the commit that queued it, in the committing
process's worker.

Each delivery has one workflow, whose id the delivery row keeps: an attempt is a step, the wait between
attempts a durable DBOS sleep, so a worker that stops or crashes resumes the schedule where it was.
The workflow id makes starting idempotent: the after-commit hook (in a process that runs a worker)
and the sweep (every CLOUDLET_WEBHOOK_SWEEP_SCHEDULE, for deliveries queued by a process without a
worker, or whose hook was lost in a crash) may both start a delivery; it still runs once.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

import structlog
from dbos import DBOS, SetWorkflowID

from cloudlet import worker
from cloudlet.config import Settings
from cloudlet.webhooks import service

log = structlog.get_logger(__name__)

QUEUE = worker.QueueSpec("cloudlet-webhooks")
SWEEP_NAME = "cloudlet-webhooks-sweep"


# A step that raises (the database was unreachable, say) is tried again a few times; the attempt
# itself never raises for what the receiver did, it records it and says when to come back.
@DBOS.step(name="cloudlet.webhooks.attempt", retries_allowed=True, max_attempts=3, interval_seconds=2.0)
def attempt(delivery_id: int) -> float | None:
    """One attempt; the seconds to wait before the next, or None when the delivery is finished."""
    running = worker.current()
    return service.attempt(running.db, running.settings, delivery_id)


@DBOS.workflow(name="cloudlet.webhooks.deliver")
def deliver(delivery_id: int) -> None:
    """Attempt, wait, attempt again, until delivered or given up."""
    while (wait := attempt(delivery_id)) is not None:
        DBOS.sleep(wait)


@DBOS.step(name="cloudlet.webhooks.pending", retries_allowed=True, max_attempts=3)
def pending() -> list[tuple[int, str]]:
    """(id, workflow id) of the deliveries still pending."""
    with worker.current().db.session(write=False) as session:
        return service.pending(session)


@DBOS.workflow(name="cloudlet.webhooks.sweep")
def sweep(scheduled_at: datetime, _context: Any) -> None:
    """Make sure every pending delivery has its workflow (starting one that has is a no-op)."""
    found = pending()
    start(found)
    if found:
        log.debug("webhook sweep", scheduled_at=scheduled_at.isoformat(), pending=len(found))


def start(deliveries: Iterable[tuple[int, str]]) -> None:
    """Enqueue the workflows of these (id, workflow id) deliveries (each at most once, whoever asks)."""
    for delivery_id, workflow_id in deliveries:
        with SetWorkflowID(workflow_id):
            DBOS.enqueue_workflow(QUEUE.name, deliver, delivery_id)


def start_now(deliveries: Iterable[tuple[int, str]]) -> None:
    """Start the workflows of these deliveries in this process's worker at once, rather than at the queue's next
    poll (a second or two later); a workflow id that exists already is left alone, as with start."""
    for delivery_id, workflow_id in deliveries:
        with SetWorkflowID(workflow_id):
            DBOS.start_workflow(deliver, delivery_id)


worker.start_after_commit(service.ENQUEUED_KEY, start_now, "webhook")


def schedules(settings: Settings) -> list[worker.Schedule]:
    """The sweep schedule the worker applies at start."""
    return [worker.Schedule(SWEEP_NAME, sweep, settings.webhook_sweep_schedule, queue=QUEUE.name)]
