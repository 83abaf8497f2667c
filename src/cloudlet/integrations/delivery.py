"""One attempt at a delivery, made by the worker: spaced to the service's limits, sent, and recorded.

Slack takes one message a second per webhook, Discord five per two seconds (and 30 a minute), Telegram one a
second per chat: before sending, the attempt counts itself against those limits (kit.ratelimit: in the worker's
memory, or in Redis shared by every worker) and, refused, says how long to wait without counting an attempt.
Then it sends and records what came back: 2xx (Discord answers 204) is delivered; a network error, 408, 429 or
5xx is tried again after a backoff that doubles (CLOUDLET_WEBHOOK_BACKOFF_SECONDS), or after the service's
Retry-After (or Discord's JSON retry_after) when that is longer, until CLOUDLET_WEBHOOK_MAX_ATTEMPTS, and then
recorded as failed; anything else (Slack's 404 "no_service" or 400 "invalid_payload", a target the SSRF rule now
refuses) fails at once. Every URL is checked
again here, after DNS, and the request goes to the address checked (webhooks.targets). An email is handed to the
outbox (mail), which sends it over SMTP; handing it over is its delivery.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from datetime import timedelta
from functools import lru_cache

import httpx
import structlog
from limits import RateLimitItem

from cloudlet import __version__
from cloudlet.agent import telegram
from cloudlet.config import Settings
from cloudlet.integrations import messages, repository, service
from cloudlet.integrations.models import DeliveryStatus, IntegrationDelivery, IntegrationType
from cloudlet.kit import clock
from cloudlet.kit.db import Database
from cloudlet.kit.errors import CloudletError
from cloudlet.kit.ids import is_number
from cloudlet.kit.ratelimit import RateLimiter, rule
from cloudlet.mail import service as mail
from cloudlet.webhooks import service as webhooks
from cloudlet.webhooks import targets

log = structlog.get_logger(__name__)

RETRYABLE_STATUSES = frozenset({408, 429})
MAX_RETRY_AFTER_SECONDS = 600.0  # a service's Retry-After is honoured up to this long
MAX_ANSWER_BYTES = 4096  # of an answer's body, kept to say why it failed
# How fast one destination may be sent to, by the services' published limits.
LIMITS: dict[IntegrationType, tuple[RateLimitItem, ...]] = {
    IntegrationType.SLACK: (rule("1/second"),),
    IntegrationType.DISCORD: (rule("5 per 2 seconds"), rule("30/minute")),  # per webhook; 30 a minute per channel
    IntegrationType.TELEGRAM: (rule("1/second"),),  # per chat
}


@dataclass(frozen=True)
class Outcome:
    """What one attempt got: a status code, or an error; whether retrying cannot help; how long to wait."""

    status_code: int | None = None
    error: str | None = None
    refused: bool = False
    retry_after: float | None = None
    delivered: bool = False  # taken without an HTTP status (an email handed to the outbox)


@dataclass(frozen=True)
class _Job:
    notice: messages.Notice
    type: IntegrationType
    config: dict[str, str | None]
    attempts: int


@lru_cache(maxsize=4)
def _limiter(redis_url: str | None, prefix: str) -> RateLimiter:
    return RateLimiter(redis_url, prefix=f"{prefix}:integrations")


def attempt(db: Database, settings: Settings, delivery_id: int) -> float | None:
    """Make the next attempt of a pending delivery and record it.

    Returns how many seconds to wait before the next attempt, or None when the delivery is finished (delivered,
    given up, gone with its integration, or not pending any more). The request is made outside any transaction.
    """
    with db.session(write=False) as session:
        delivery = repository.get_delivery(session, delivery_id)
        integration = repository.get(session, delivery.integration_id) if delivery is not None else None
        if delivery is None or integration is None or delivery.status is not DeliveryStatus.PENDING:
            return None
        notice = messages.Notice(delivery_id=delivery.id, integration_id=integration.id,
                                 project_id=integration.project_id, name=integration.name, test=delivery.test,
                                 events=list(delivery.events))
        job = _Job(notice, integration.type, service.opened_config(settings, integration), delivery.attempts)
    wait = _spacing(settings, job)
    if wait is not None:
        return wait
    if job.type is IntegrationType.EMAIL:
        return _hand_to_outbox(db, settings, job)
    outcome = _send(settings, job)
    with db.session() as session:
        delivery = repository.get_delivery(session, delivery_id)
        if delivery is None or delivery.status is not DeliveryStatus.PENDING:
            return None
        return _record(delivery, settings, outcome)


def _spacing(settings: Settings, job: _Job) -> float | None:
    """Seconds to wait before the destination may take another message, or None when it may now (counted)."""
    limits = LIMITS.get(job.type)
    if limits is None:
        return None
    destination = job.config.get("webhook_url") or job.config.get("chat_id") or ""
    key = f"{job.type.value}:{hashlib.sha256(destination.encode()).hexdigest()[:32]}"
    verdict = _limiter(settings.redis_url, settings.redis_prefix).hit(key, *limits)
    return None if verdict.allowed else float(verdict.retry_after)


def _hand_to_outbox(db: Database, settings: Settings, job: _Job) -> float | None:
    subject, body = messages.email(job.notice)
    with db.session() as session:
        delivery = repository.get_delivery(session, job.notice.delivery_id)
        if delivery is None or delivery.status is not DeliveryStatus.PENDING:
            return None
        mail.queue(session, to=str(job.config["address"]), subject=subject, body=body, kind="integration")
        return _record(delivery, settings, Outcome(delivered=True))


def _record(delivery: IntegrationDelivery, settings: Settings, outcome: Outcome) -> float | None:
    now = clock.now()
    delivery.attempts += 1
    delivery.last_status_code = outcome.status_code
    delivery.last_error = outcome.error[:1000] if outcome.error else None
    delivery.next_attempt_at = None
    code = outcome.status_code
    if outcome.delivered or (code is not None and 200 <= code < 300):
        delivery.status = DeliveryStatus.DELIVERED
        delivery.delivered_at = now
        log.info("integration delivered", delivery_id=delivery.id, integration_id=delivery.integration_id,
                 status_code=code, attempts=delivery.attempts)
        return None
    retryable = not outcome.refused and (code is None or code >= 500 or code in RETRYABLE_STATUSES)
    if not retryable or delivery.attempts >= settings.webhook_max_attempts:
        delivery.status = DeliveryStatus.FAILED
        log.warning("integration delivery given up", delivery_id=delivery.id,
                    integration_id=delivery.integration_id, status_code=code, error=delivery.last_error,
                    attempts=delivery.attempts)
        return None
    wait: float = settings.webhook_backoff_seconds * 2.0 ** (delivery.attempts - 1)
    if outcome.retry_after is not None:  # the service asked for a longer pause (429, 503)
        wait = max(wait, min(outcome.retry_after, MAX_RETRY_AFTER_SECONDS))
    delivery.next_attempt_at = now + timedelta(seconds=wait)
    log.info("integration delivery will retry", delivery_id=delivery.id, status_code=code,
             error=delivery.last_error, attempts=delivery.attempts, wait_seconds=wait)
    return wait


def _send(settings: Settings, job: _Job) -> Outcome:
    notice = job.notice
    if job.type is IntegrationType.TELEGRAM:
        return _telegram(settings, str(job.config["chat_id"]), messages.text(notice))
    if job.type is IntegrationType.SLACK:
        return _post(settings, str(job.config["webhook_url"]), _json(messages.slack(notice)), {})
    if job.type is IntegrationType.DISCORD:
        return _post(settings, str(job.config["webhook_url"]), _json(messages.discord(notice)), {})
    body = _json(messages.webhook(notice))
    headers = {"X-Webhook-Event": "integration.test" if notice.test else "integration.events",
               "X-Webhook-Delivery": str(notice.delivery_id), "X-Webhook-Timestamp": str(int(time.time())),
               "X-Webhook-Attempt": str(job.attempts + 1)}
    secret = job.config.get("secret")
    if secret:
        headers[webhooks.SIGNATURE_HEADER] = webhooks.sign(secret, body)
    return _post(settings, str(job.config["url"]), body, headers)


def _json(body: object) -> bytes:
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


def _telegram(settings: Settings, link: str, text: str) -> Outcome:
    try:
        api = telegram.bot(settings)
    except CloudletError as refused:  # the operator's Bot API URL is one the SSRF rule refuses
        return Outcome(error=f"refused: {refused.message}", refused=True)
    if api is None:
        return Outcome(error="no Telegram bot is set up (CLOUDLET_TELEGRAM_BOT_TOKEN)", refused=True)
    try:
        with api.client() as client:
            api.send_message(client, service.telegram_chat(link), text)
    except telegram.BotApiError as failed:
        return Outcome(status_code=failed.error_code, error=failed.description, retry_after=failed.retry_after)
    return Outcome(status_code=200)


def _post(settings: Settings, url: str, body: bytes, extra: dict[str, str]) -> Outcome:
    try:
        target = targets.resolve(url, allow_private=settings.webhook_allow_private)
    except targets.RefusedTarget as exc:
        return Outcome(error=f"refused: {exc}", refused=True)
    except OSError as exc:
        return Outcome(error=f"could not resolve the host: {exc}")
    headers = {"Host": target.host_header, "Content-Type": "application/json",
               "User-Agent": f"Cloudlet-Integrations/{__version__}", **extra}
    extensions = {"sni_hostname": target.sni_hostname} if target.url.scheme == "https" else {}
    try:
        # trust_env=False: no proxy from the environment, so the request goes to the address checked above
        with httpx.Client(timeout=httpx.Timeout(settings.webhook_timeout_seconds), follow_redirects=False,
                          trust_env=False) as client, \
                client.stream("POST", target.url, content=body, headers=headers, extensions=extensions) as reply:
            code = reply.status_code
            retry_after = _seconds(reply.headers.get("Retry-After"))
            answer = b""
            if not 200 <= code < 300:
                for chunk in reply.iter_bytes():
                    answer += chunk
                    if len(answer) >= MAX_ANSWER_BYTES:
                        break
    except httpx.HTTPError as exc:
        said = str(exc).replace(str(target.url), "<url>").replace(url, "<url>")  # the URL carries the token
        return Outcome(error=f"{type(exc).__name__}: {said}" if said else type(exc).__name__)
    if 200 <= code < 300:
        return Outcome(status_code=code)
    said = answer[:MAX_ANSWER_BYTES].decode("utf-8", "replace").strip()
    if code == 429:  # Discord says how long in its JSON too (seconds, with a fraction)
        retry_after = max(filter(None, (retry_after, _json_retry_after(said))), default=None)
    if 300 <= code < 400:
        return Outcome(status_code=code, error=f"HTTP {code}: redirects are not followed")
    return Outcome(status_code=code, error=f"HTTP {code}" + (f": {said[:200]}" if said else ""),
                   retry_after=retry_after)


def _json_retry_after(answer: str) -> float | None:
    try:
        found = json.loads(answer)
    except ValueError:
        return None
    value = found.get("retry_after") if isinstance(found, dict) else None
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0 else None


def _seconds(retry_after: str | None) -> float | None:
    # only the delay-seconds form (what Slack and Discord send); an HTTP date falls back to the backoff
    if retry_after is None or not is_number(retry_after.strip()):
        return None
    return float(retry_after.strip())
