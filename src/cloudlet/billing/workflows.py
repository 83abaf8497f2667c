"""Billing as a durable workflow: a scheduled run that renews due cycles and charges started hours.

The schedule (CLOUDLET_BILLING_SCHEDULE, every minute by default) is cheap when nothing is due.
Each half of a run is a DBOS step, so a run interrupted by a crash resumes after the last finished
step; the jobs themselves are idempotent (every charge's ledger key names its period), so a step
retried after posting still charges nothing twice. Runs go through one queue that admits a single
run at a time across every executor, so a slow run is never overtaken by the next tick.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import structlog
from dbos import DBOS

from cloudlet import worker
from cloudlet.billing import jobs
from cloudlet.billing.schemas import RunReport
from cloudlet.config import Settings

log = structlog.get_logger(__name__)

SCHEDULE_NAME = "cloudlet-billing"
QUEUE = worker.QueueSpec("cloudlet-billing", global_concurrency=1)


@DBOS.step(name="cloudlet.billing.renewals", retries_allowed=True, max_attempts=3)
def renewals() -> RunReport:
    """Renew, end or suspend every cycle-billed subscription due now."""
    running = worker.current()
    return jobs.run_renewals(running.db, running.settings)


@DBOS.step(name="cloudlet.billing.hourly", retries_allowed=True, max_attempts=3)
def hourly() -> RunReport:
    """Charge every started hour of hourly subscriptions up to now."""
    running = worker.current()
    return jobs.run_hourly(running.db, running.settings)


@DBOS.workflow(name="cloudlet.billing.run")
def billing_run(scheduled_at: datetime, _context: Any) -> None:
    """One tick of the billing schedule: renewals, then hours, each a step; logs what it did."""
    renewed = renewals()
    charged = hourly()
    busy = renewed != RunReport() or charged != RunReport()
    # A quiet run is the common case every minute: worth a line only when debugging.
    emit = log.info if busy else log.debug
    emit("billing run", scheduled_at=scheduled_at.isoformat(), workflow_id=DBOS.workflow_id,
         executor_id=worker.current().executor_id, renewals=renewed.model_dump(), hourly=charged.model_dump())


def schedules(settings: Settings) -> list[worker.Schedule]:
    """The billing schedule the worker applies at start (a changed setting replaces the stored one)."""
    return [worker.Schedule(SCHEDULE_NAME, billing_run, settings.billing_schedule, queue=QUEUE.name)]
