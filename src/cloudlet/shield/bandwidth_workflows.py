"""The transfer quota round as a scheduled DBOS workflow (CLOUDLET_TRANSFER_QUOTA_SCHEDULE): each server's month
counted against its plan, warned, throttled or restored, and every guest given the cap it should have
(shield/bandwidth.py). Rounds go through a queue of concurrency one, so two never overlap.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import structlog
from dbos import DBOS

from cloudlet import worker
from cloudlet.config import Settings
from cloudlet.shield import bandwidth
from cloudlet.shield.schemas import QuotaReport

log = structlog.get_logger(__name__)

QUEUE = worker.QueueSpec("cloudlet-transfer", global_concurrency=1)
SCHEDULE_NAME = "cloudlet-transfer-quota"


@DBOS.step(name="cloudlet.shield.transfer_quota")
def quota_step() -> QuotaReport:
    """One round over every server with a guest."""
    running = worker.current()
    return bandwidth.quota_round(running.db, running.drivers, running.settings)


@DBOS.workflow(name="cloudlet.shield.transfer")
def quota_run(scheduled_at: datetime, _context: Any) -> None:
    """One tick of the schedule."""
    report = quota_step()
    if report.capped or report.warned or report.throttled or report.restored:
        log.info("transfer quota round", scheduled_at=scheduled_at.isoformat(), **report.model_dump())


def schedules(settings: Settings) -> list[worker.Schedule]:
    """The quota schedule the worker applies at start."""
    return [worker.Schedule(SCHEDULE_NAME, quota_run, settings.transfer_quota_schedule, queue=QUEUE.name)]
