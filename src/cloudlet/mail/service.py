"""Queueing mail in the outbox inside the caller's transaction, and sending it over SMTP after commit."""

from __future__ import annotations

import smtplib
from concurrent.futures import Future, ThreadPoolExecutor
from email.message import EmailMessage
from email.utils import make_msgid

import structlog
from sqlalchemy.orm import Session

from cloudlet.config import Settings, reveal
from cloudlet.kit import clock
from cloudlet.kit.db import Database
from cloudlet.mail import repository
from cloudlet.mail.models import MailStatus, OutboxMessage
from cloudlet.mail.schemas import OutboxRead

log = structlog.get_logger(__name__)
QUEUED_FLAG = "cloudlet_mail_queued"
MAX_ATTEMPTS = 5


def queue(session: Session, *, to: str, subject: str, body: str, kind: str) -> OutboxMessage:
    """Put a message in the outbox; it is sent after the transaction commits, if SMTP is configured."""
    session.info[QUEUED_FLAG] = True
    return repository.insert(session, OutboxMessage(to_address=to, subject=subject, body=body, kind=kind,
                                                    status=MailStatus.QUEUED, attempts=0))


def outbox(session: Session, *, limit: int = 50) -> list[OutboxRead]:
    """The newest messages in the outbox, sent or not."""
    return [OutboxRead.model_validate(m) for m in repository.newest(session, limit)]


class Mailer:
    """Sends queued outbox messages over SMTP on one background thread, after the commits that queued them."""

    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.settings = settings
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mailer")
        self._last: Future[int] | None = None

    @property
    def enabled(self) -> bool:
        """Whether SMTP is configured; without it, mail stays in the outbox."""
        return bool(self.settings.smtp_host)

    def on_commit(self, session: Session) -> None:
        """After-commit hook: start sending if the committed transaction queued mail."""
        if session.info.pop(QUEUED_FLAG, False):
            self.kick()

    def kick(self) -> None:
        """Send whatever is queued, in the background."""
        if self.enabled:
            self._last = self._executor.submit(self.deliver_pending)

    def wait(self, timeout: float = 10.0) -> None:
        """Block until the latest background send has finished (tests and shutdown)."""
        if self._last is not None:
            self._last.result(timeout=timeout)

    def deliver_pending(self, batch: int = 50) -> int:
        """Send queued messages now; returns how many were sent."""
        sent = 0
        with self.db.session() as session:
            for message in repository.claim_queued(session, batch, MAX_ATTEMPTS):
                message.attempts += 1
                try:
                    self._send(message)
                except (OSError, smtplib.SMTPException) as exc:
                    message.last_error = f"{type(exc).__name__}: {exc}"[:1000]
                    if message.attempts >= MAX_ATTEMPTS:
                        message.status = MailStatus.FAILED
                    log.warning("mail not sent", to=message.to_address, error=message.last_error)
                    continue
                message.status = MailStatus.SENT
                message.sent_at = clock.now()
                message.last_error = None
                sent += 1
        return sent

    def _send(self, message: OutboxMessage) -> None:
        settings = self.settings
        email = EmailMessage()
        email["From"] = settings.mail_from
        email["To"] = message.to_address
        email["Subject"] = message.subject
        email["Message-ID"] = make_msgid(domain="cloudlet.localhost")
        email.set_content(message.body)
        with smtplib.SMTP(settings.smtp_host or "localhost", settings.smtp_port, timeout=15) as smtp:
            if settings.smtp_starttls:
                smtp.starttls()
            password = reveal(settings.smtp_password)
            if settings.smtp_username and password:
                smtp.login(settings.smtp_username, password)
            smtp.send_message(email)

    def close(self) -> None:
        """Stop the background thread after the work in hand."""
        self._executor.shutdown(wait=True)
