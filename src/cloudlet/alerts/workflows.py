"""The alert evaluation as a scheduled DBOS workflow (CLOUDLET_ALERT_EVALUATION_SCHEDULE, every 30 s by default).

Each round judges every enabled rule in one transaction (service.evaluate): the alerts it opens, the events and
the emails that tell of them commit together, and the mail goes out after the commit. The rounds go through a
queue of concurrency one, so two never overlap whichever executors run them; a tick that waited longer than
MAX_LATENESS behind a slow round is skipped, so a backlog never builds up.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from dbos import DBOS

from cloudlet import worker
from cloudlet.alerts import service as alerts
from cloudlet.alerts.schemas import EvaluationReport
from cloudlet.config import Settings
from cloudlet.kit import clock
from cloudlet.kit.db import Database

log = structlog.get_logger(__name__)

QUEUE = worker.QueueSpec("cloudlet-alerts", global_concurrency=1)
SCHEDULE_NAME = "cloudlet-alert-evaluation"
MAX_LATENESS = timedelta(seconds=30)


def evaluate_all(db: Database) -> EvaluationReport:
    """One evaluation round in its own transaction."""
    with db.session() as session:
        return alerts.evaluate(session, clock.now())


@DBOS.step(name="cloudlet.alerts.evaluation")
def evaluation() -> EvaluationReport:
    """Judge every enabled alert rule once."""
    return evaluate_all(worker.current().db)


@DBOS.workflow(name="cloudlet.alerts.evaluate")
def evaluate_run(scheduled_at: datetime, _context: Any) -> None:
    """One tick of the evaluation schedule (skipped when it waited too long behind a slower round)."""
    tick = scheduled_at if scheduled_at.tzinfo else scheduled_at.replace(tzinfo=UTC)
    late = datetime.now(UTC) - tick  # DBOS ticks on the real clock, whatever kit.clock says
    if late > MAX_LATENESS:
        log.warning("alerts: tick skipped, the previous round ran too long", late_seconds=late.total_seconds())
        return
    report = evaluation()
    log.debug("alerts evaluated", scheduled_at=scheduled_at.isoformat(), **report.model_dump())


def schedules(settings: Settings) -> list[worker.Schedule]:
    """The evaluation schedule the worker applies at start."""
    return [worker.Schedule(SCHEDULE_NAME, evaluate_run, settings.alert_evaluation_schedule, queue=QUEUE.name)]
