"""The agent's schedule: the Telegram round (CLOUDLET_TELEGRAM_POLL_SCHEDULE) that reads the bot's new messages
and answers them (agent/telegram.py); without a bot token it does nothing."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import structlog
from dbos import DBOS

from cloudlet import worker
from cloudlet.agent import telegram
from cloudlet.config import Settings

log = structlog.get_logger(__name__)

TELEGRAM_NAME = "cloudlet-agent-telegram"


@DBOS.step(name="cloudlet.agent.telegram_poll")
def telegram_step() -> int:
    """One Telegram round in the worker; the updates it took."""
    running = worker.current()
    return telegram.poll(running.db, running.settings, running.drivers)


@DBOS.workflow(name="cloudlet.agent.telegram_run")
def telegram_run(scheduled_at: datetime, _context: Any) -> None:
    """One tick of the Telegram schedule."""
    taken = telegram_step()
    if taken:
        log.info("telegram messages answered", scheduled_at=scheduled_at.isoformat(), updates=taken)


def schedules(settings: Settings) -> list[worker.Schedule]:
    """The Telegram round's schedule, which the worker applies at start."""
    return [worker.Schedule(TELEGRAM_NAME, telegram_run, settings.telegram_poll_schedule)]
