"""Billing runs: plain, idempotent functions a scheduler (or `cloudlet billing run`) calls.

Each due subscription is brought up to date in its own transaction, so one wallet's trouble
never holds up or rolls back another's, and locks are held briefly. Running a job twice for
the same moment posts nothing the second time: every charge's ledger key names its period.
"""

from __future__ import annotations

from datetime import datetime

import structlog

from cloudlet.billing import service
from cloudlet.billing.models import SubscriptionStatus
from cloudlet.billing.schemas import RunReport
from cloudlet.config import Settings
from cloudlet.kit import clock
from cloudlet.kit.db import Database

log = structlog.get_logger(__name__)


def _run(db: Database, settings: Settings, now: datetime, *, hourly: bool) -> RunReport:
    report = RunReport()
    with db.session(write=False) as session:
        due = service.due_subscriptions(session, now, hourly=hourly)
    for subscription_id in due:
        try:
            with db.session() as session:
                result = service.renew(session, settings, subscription_id, now=now)
        except Exception:
            # One broken subscription must not stop the run; the next run retries it.
            log.exception("billing step failed", subscription_id=subscription_id)
            continue
        sub = result.subscription
        if hourly:
            report.hours_charged += len(result.entries)
        else:
            report.renewed += len(result.entries)
        if sub.status is SubscriptionStatus.ENDED:
            report.ended += 1
        elif sub.status is SubscriptionStatus.SUSPENDED:
            report.suspended += 1
        elif sub.grace_until is not None:
            report.in_grace += 1
    return report


def run_renewals(db: Database, settings: Settings, now: datetime | None = None) -> RunReport:
    """Renew (or end, or suspend) every cycle-billed subscription due at `now`."""
    return _run(db, settings, now or clock.now(), hourly=False)


def run_hourly(db: Database, settings: Settings, now: datetime | None = None) -> RunReport:
    """Charge every started hour of hourly subscriptions up to `now`."""
    return _run(db, settings, now or clock.now(), hourly=True)
