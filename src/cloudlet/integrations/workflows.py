"""Integrations in the worker: a sweep that reads new events and queues their deliveries, and a durable workflow
per delivery.

Every CLOUDLET_INTEGRATION_SWEEP_SCHEDULE (5 s by default) the sweep fans the events recorded since its last
reading out to the integrations that receive them (service.fan_out: one transaction, the cursor moved in it) and
makes sure every pending delivery has its workflow. A delivery's workflow makes an attempt as a step and waits
between attempts with a durable DBOS sleep, so a worker that stops or crashes resumes the schedule where it was;
its id is the delivery row's, so starting it twice (the after-commit hook of a test message, and the sweep)
still runs it once. With CLOUDLET_INTEGRATION_DELIVERIES off neither starts anything: deliveries and events wait.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

import structlog
from dbos import DBOS, SetWorkflowID

from cloudlet import worker
from cloudlet.config import Settings
from cloudlet.integrations import delivery, service

log = structlog.get_logger(__name__)

QUEUE = worker.QueueSpec("cloudlet-integrations")
SWEEP_NAME = "cloudlet-integrations-sweep"


# A step that raises (the database was unreachable, say) is tried again a few times; the attempt itself never
# raises for what the service answered, it records it and says when to come back.
@DBOS.step(name="cloudlet.integrations.attempt", retries_allowed=True, max_attempts=3, interval_seconds=2.0)
def attempt(delivery_id: int) -> float | None:
    """One attempt; the seconds to wait before the next, or None when the delivery is finished."""
    running = worker.current()
    return delivery.attempt(running.db, running.settings, delivery_id)


@DBOS.workflow(name="cloudlet.integrations.deliver")
def deliver(delivery_id: int) -> None:
    """Attempt, wait, attempt again, until delivered or given up."""
    while (wait := attempt(delivery_id)) is not None:
        DBOS.sleep(wait)


@DBOS.step(name="cloudlet.integrations.fan_out", retries_allowed=True, max_attempts=3)
def fan_out() -> int:
    """Queue the deliveries of the events recorded since the last reading; how many were queued."""
    with worker.current().db.session() as session:
        return len(service.fan_out(session))


@DBOS.step(name="cloudlet.integrations.pending", retries_allowed=True, max_attempts=3)
def pending() -> list[tuple[int, str]]:
    """(id, workflow id) of the deliveries still pending."""
    with worker.current().db.session(write=False) as session:
        return service.pending(session)


@DBOS.workflow(name="cloudlet.integrations.sweep")
def sweep(scheduled_at: datetime, _context: Any) -> None:
    """Read new events into deliveries, and make sure every pending delivery has its workflow."""
    if not worker.current().settings.integration_deliveries:
        return
    queued = fan_out()
    found = pending()
    start(found)
    if found:
        log.debug("integration sweep", scheduled_at=scheduled_at.isoformat(), queued=queued, pending=len(found))


def start(deliveries: Iterable[tuple[int, str]]) -> None:
    """Enqueue the workflows of these (id, workflow id) deliveries (each at most once, whoever asks)."""
    for delivery_id, workflow_id in deliveries:
        with SetWorkflowID(workflow_id):
            DBOS.enqueue_workflow(QUEUE.name, deliver, delivery_id)


def start_now(deliveries: Iterable[tuple[int, str]]) -> None:
    """Start these deliveries' workflows in this process's worker at once (a test message goes out without
    waiting for the queue's next poll), unless the operator switched deliveries off."""
    if not worker.current().settings.integration_deliveries:
        return
    for delivery_id, workflow_id in deliveries:
        with SetWorkflowID(workflow_id):
            DBOS.start_workflow(deliver, delivery_id)


worker.start_after_commit(service.ENQUEUED_KEY, start_now, "integration delivery")


def schedules(settings: Settings) -> list[worker.Schedule]:
    """The sweep schedule the worker applies at start."""
    return [worker.Schedule(SWEEP_NAME, sweep, settings.integration_sweep_schedule, queue=QUEUE.name)]
