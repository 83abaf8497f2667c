"""Signed webhooks: queue a delivery in the caller's transaction, and make one attempt at a time.

`enqueue` only writes the delivery log; once the caller's transaction commits, the worker's
`cloudlet.webhooks.deliver` workflow (see workflows.py) makes the attempts with exponential
backoff: it stops on 2xx, retries network errors, 5xx, 408 and 429, and gives up on anything else
or after CLOUDLET_WEBHOOK_MAX_ATTEMPTS. Delivery is at least once: a crash between the receiver's
2xx and our record of it sends again, with the same X-Webhook-Delivery id so receivers can dedupe.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

import httpx
import structlog
from pydantic import BaseModel
from sqlalchemy.orm import Session

from cloudlet import __version__
from cloudlet.config import Settings
from cloudlet.kit import clock
from cloudlet.kit.db import Database
from cloudlet.kit.errors import Invalid, NotFound
from cloudlet.kit.ids import is_number
from cloudlet.kit.secretbox import SecretBox
from cloudlet.webhooks import repository, targets
from cloudlet.webhooks.models import DeliveryStatus, WebhookDelivery
from cloudlet.webhooks.schemas import DeploymentData, DeploymentNotice, WebhookDeliveryRead, WebhookEvent

log = structlog.get_logger(__name__)

ENQUEUED_KEY = "cloudlet_webhooks_enqueued"  # session.info: (id, workflow id) to start once the commit is done
SIGNATURE_HEADER = "X-Webhook-Signature"
MAX_SECRET_LENGTH = 500
RETRYABLE_STATUSES = frozenset({408, 429})
MAX_RETRY_AFTER_SECONDS = 600.0  # a receiver's Retry-After is honoured up to this long


def sign(secret: str, body: bytes) -> str:
    """The X-Webhook-Signature value: "sha256=" and the hex HMAC-SHA256 of the exact body bytes."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def signature_matches(secret: str, body: bytes, header: str | None) -> bool:
    """Whether a received X-Webhook-Signature header is right for this body (constant-time compare)."""
    return header is not None and hmac.compare_digest(sign(secret, body), header.strip())


def check_url(settings: Settings, url: str) -> str:
    """Refuse a webhook URL the worker would not send to (422 on webhook_url); returns it as given."""
    targets.check_url(url, allow_private=settings.webhook_allow_private)
    return url


@lru_cache(maxsize=4)
def _box(master_secret: str) -> SecretBox:
    return SecretBox(master_secret, "webhooks")


def enqueue(session: Session, settings: Settings, *, url: str, secret: str | None, event: WebhookEvent,
            payload: BaseModel | Mapping[str, Any], reference: str | None = None) -> WebhookDeliveryRead:
    """Log a delivery in the caller's transaction; the worker starts sending it once that commits."""
    check_url(settings, url)
    if secret is not None and len(secret) > MAX_SECRET_LENGTH:
        raise Invalid("webhook_secret", f"The webhook secret must be at most {MAX_SECRET_LENGTH} characters.")
    body = (payload.model_dump_json() if isinstance(payload, BaseModel)
            else json.dumps(payload, separators=(",", ":"), ensure_ascii=False, default=str))
    delivery = repository.insert(session, WebhookDelivery(
        workflow_id=f"cloudlet-webhook-{uuid.uuid4().hex}", reference=reference, url=url,
        secret=_box(settings.jwt_secret).seal(secret) if secret else None, event=str(event), body=body,
        status=DeliveryStatus.PENDING, attempts=0,
        next_attempt_at=clock.now()))
    session.info.setdefault(ENQUEUED_KEY, []).append((delivery.id, delivery.workflow_id))
    return _read(delivery)


def get_delivery(session: Session, delivery_id: int) -> WebhookDeliveryRead:
    """One delivery of the log."""
    delivery = repository.get(session, delivery_id)
    if delivery is None:
        raise NotFound("webhook delivery", delivery_id)
    return _read(delivery)


def deliveries(session: Session, reference: str) -> list[WebhookDeliveryRead]:
    """The delivery log of one object (e.g. an instance), oldest first."""
    return [_read(d) for d in repository.for_reference(session, reference)]


def pending(session: Session, limit: int = 500) -> list[tuple[int, str]]:
    """(id, workflow id) of the deliveries not yet finished, which the worker's sweep makes sure run."""
    return repository.pending(session, limit)


def deployment_completed(*, vps_id: int, name: str, ip_address: str | None, deployment_time_seconds: int,
                         status: str = "running", at: datetime | None = None) -> DeploymentNotice:
    """CyberPanel's vps.deployment.completed body."""
    return _deployment(WebhookEvent.DEPLOYMENT_COMPLETED, vps_id, name, status, ip_address,
                       deployment_time_seconds, at)


def deployment_failed(*, vps_id: int, name: str, ip_address: str | None, deployment_time_seconds: int,
                      status: str = "failed", at: datetime | None = None) -> DeploymentNotice:
    """CyberPanel's vps.deployment.failed body."""
    return _deployment(WebhookEvent.DEPLOYMENT_FAILED, vps_id, name, status, ip_address,
                       deployment_time_seconds, at)


def _deployment(event: WebhookEvent, vps_id: int, name: str, status: str, ip_address: str | None,
                seconds: int, at: datetime | None) -> DeploymentNotice:
    data = DeploymentData(vps_id=vps_id, name=name, status=status, ip_address=ip_address,
                          deployment_time_seconds=max(0, seconds))
    return DeploymentNotice(event=event, timestamp=at or clock.now(), data=data)


def _read(delivery: WebhookDelivery) -> WebhookDeliveryRead:
    return WebhookDeliveryRead(
        id=delivery.id, reference=delivery.reference, url=delivery.url, event=delivery.event,
        status=delivery.status, signed=delivery.secret is not None, attempts=delivery.attempts,
        last_status_code=delivery.last_status_code, last_error=delivery.last_error,
        next_attempt_at=delivery.next_attempt_at, created_at=delivery.created_at,
        delivered_at=delivery.delivered_at)


@dataclass(frozen=True)
class _Request:
    id: int
    url: str
    secret: str | None
    event: str
    body: bytes
    attempts: int


@dataclass(frozen=True)
class _Outcome:
    status_code: int | None = None
    error: str | None = None
    refused: bool = False
    retry_after: float | None = None  # seconds, from a Retry-After header


def attempt(db: Database, settings: Settings, delivery_id: int) -> float | None:
    """Make the next attempt of a pending delivery and record it.

    Returns how many seconds to wait before the next attempt, or None when the delivery is finished
    (delivered, given up, or not pending any more). The request is made outside any transaction.
    """
    with db.session(write=False) as session:
        delivery = repository.get(session, delivery_id)
        if delivery is None or delivery.status != DeliveryStatus.PENDING:
            return None
        secret = _box(settings.jwt_secret).open(delivery.secret) if delivery.secret else None
        request = _Request(delivery.id, delivery.url, secret, delivery.event, delivery.body.encode(),
                           delivery.attempts)
    outcome = _post(settings, request)
    with db.session() as session:
        delivery = repository.get(session, delivery_id)
        if delivery is None or delivery.status != DeliveryStatus.PENDING:
            return None
        return _record(delivery, settings, outcome)


def _record(delivery: WebhookDelivery, settings: Settings, outcome: _Outcome) -> float | None:
    now = clock.now()
    delivery.attempts += 1
    delivery.last_status_code = outcome.status_code
    delivery.last_error = outcome.error[:1000] if outcome.error else None
    delivery.next_attempt_at = None
    code = outcome.status_code
    if code is not None and 200 <= code < 300:
        delivery.status = DeliveryStatus.DELIVERED
        delivery.delivered_at = now
        log.info("webhook delivered", delivery_id=delivery.id, webhook_event=delivery.event, status_code=code,
                 attempts=delivery.attempts)
        return None
    retryable = not outcome.refused and (code is None or code >= 500 or code in RETRYABLE_STATUSES)
    if not retryable or delivery.attempts >= settings.webhook_max_attempts:
        delivery.status = DeliveryStatus.FAILED
        log.warning("webhook given up", delivery_id=delivery.id, webhook_event=delivery.event, status_code=code,
                    error=delivery.last_error, attempts=delivery.attempts)
        return None
    wait: float = settings.webhook_backoff_seconds * 2.0 ** (delivery.attempts - 1)
    if outcome.retry_after is not None:  # the receiver asked for a longer pause (429, 503)
        wait = max(wait, min(outcome.retry_after, MAX_RETRY_AFTER_SECONDS))
    delivery.next_attempt_at = now + timedelta(seconds=wait)
    log.info("webhook will retry", delivery_id=delivery.id, status_code=code, error=delivery.last_error,
             attempts=delivery.attempts, wait_seconds=wait)
    return wait


def _post(settings: Settings, request: _Request) -> _Outcome:
    try:
        target = targets.resolve(request.url, allow_private=settings.webhook_allow_private)
    except targets.RefusedTarget as exc:
        return _Outcome(error=f"refused: {exc}", refused=True)
    except OSError as exc:
        return _Outcome(error=f"could not resolve the host: {exc}")
    headers = {
        "Host": target.host_header,
        "Content-Type": "application/json",
        "User-Agent": f"Cloudlet-Webhooks/{__version__}",
        "X-Webhook-Event": request.event,
        "X-Webhook-Delivery": str(request.id),
        "X-Webhook-Timestamp": str(int(time.time())),
        "X-Webhook-Attempt": str(request.attempts + 1),
    }
    if request.secret:
        headers[SIGNATURE_HEADER] = sign(request.secret, request.body)
    timeout = httpx.Timeout(settings.webhook_timeout_seconds)
    extensions = {"sni_hostname": target.sni_hostname} if target.url.scheme == "https" else {}
    try:
        # trust_env=False: no proxy from the environment, so the request goes to the address checked above
        with httpx.Client(timeout=timeout, follow_redirects=False, trust_env=False) as client, \
                client.stream("POST", target.url, content=request.body, headers=headers,
                              extensions=extensions) as reply:
            code = reply.status_code
            retry_after = _seconds(reply.headers.get("Retry-After"))
    except httpx.HTTPError as exc:
        return _Outcome(error=f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
    if 300 <= code < 400:
        return _Outcome(status_code=code, error=f"HTTP {code}: redirects are not followed")
    if not 200 <= code < 300:
        return _Outcome(status_code=code, error=f"HTTP {code}", retry_after=retry_after)
    return _Outcome(status_code=code)


def _seconds(retry_after: str | None) -> float | None:
    # only the delay-seconds form; an HTTP date is rare from webhook receivers and falls back to backoff
    if retry_after is None or not is_number(retry_after.strip()):
        return None
    return float(retry_after.strip())
