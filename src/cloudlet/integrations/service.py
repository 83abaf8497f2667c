"""Integrations of a project: made, changed and read here; events fanned out to them; test messages queued.

Secrets stay sealed: a config is kept whole under the installation's secret (kit/secretbox) and shown masked
(a webhook URL keeps its host and path but not its token; a signing secret only its last four characters).
Every URL passes the SSRF rule (webhooks.targets with CLOUDLET_WEBHOOK_ALLOW_PRIVATE) when it is saved, and
again before every attempt (delivery.py).

Events are read after a cursor kept in the database (`fan_out`, run by the worker's sweep): each reading takes
the events recorded since the last one, moves the cursor in a compare-and-set (two sweeps never take the same
events) and queues, in the same transaction, one delivery per enabled integration of the event's project that
receives its kind. The events one integration gets in one reading go out as one message (a burst coalesced),
at most EVENTS_PER_MESSAGE to a message. A reading stops at the first event younger than SETTLE: a transaction
that took an event id earlier but commits a moment later (PostgreSQL's sequences do not wait for commits) is then
read too, rather than passed by the cursor.
An integration is told of the events recorded after it was made, never of its project's past.
"""

from __future__ import annotations

import hmac
import itertools
import json
import re
import uuid
from datetime import timedelta
from functools import lru_cache
from typing import Any

import httpx
from pydantic import BaseModel, ValidationError
from sqlalchemy.orm import Session

from cloudlet.agent import telegram
from cloudlet.config import Settings
from cloudlet.events import service as events
from cloudlet.events.schemas import EventKind, EventRead
from cloudlet.integrations import repository
from cloudlet.integrations.models import DeliveryStatus, Integration, IntegrationDelivery, IntegrationType
from cloudlet.integrations.schemas import (
    ALL_EVENTS,
    CONFIGS,
    ConfigFieldRead,
    DeliveryRead,
    IntegrationCreate,
    IntegrationRead,
    IntegrationTypeRead,
    IntegrationTypesRead,
    IntegrationUpdate,
)
from cloudlet.kit import clock
from cloudlet.kit.errors import Conflict, Invalid, NotFound, Unavailable
from cloudlet.kit.secretbox import SecretBox
from cloudlet.projects import service as projects
from cloudlet.projects.schemas import Actor
from cloudlet.webhooks import targets

ENQUEUED_KEY = "cloudlet_integrations_enqueued"  # session.info: (id, workflow id) to start once the commit is done
MAX_PER_PROJECT = 50
READ_BATCH = 500  # events one reading takes at most; the next reading goes on from there
EVENTS_PER_MESSAGE = 10  # a burst larger than this becomes several messages (Discord shows 10 embeds at most)
SETTLE = timedelta(seconds=2)
TEST_KIND = "integration.test"
MASK = "****"
CHAT_ID = re.compile(r"-?[0-9]{1,20}")

# Which config fields are secret (sealed, shown masked), per type.
SECRET_FIELDS: dict[IntegrationType, frozenset[str]] = {
    IntegrationType.SLACK: frozenset({"webhook_url"}),
    IntegrationType.DISCORD: frozenset({"webhook_url"}),
    IntegrationType.TELEGRAM: frozenset({"chat_id"}),  # the link id: its tag is what lets one aim at a chat
    IntegrationType.WEBHOOK: frozenset({"url", "secret"}),
    IntegrationType.EMAIL: frozenset(),
}
URL_FIELDS = frozenset({"webhook_url", "url"})

TYPES: dict[IntegrationType, tuple[str, str, str | None]] = {
    IntegrationType.SLACK: ("Slack", "A Slack channel, through an incoming webhook.", "1 message per second"),
    IntegrationType.DISCORD: ("Discord", "A Discord channel, through its webhook.", "5 messages per 2 seconds"),
    IntegrationType.TELEGRAM: ("Telegram", "A Telegram chat of the operator's bot: send /start to the bot in the "
                               "chat and give the link id it answers.", "1 message per second"),
    IntegrationType.WEBHOOK: ("Webhook", "Any HTTP(S) endpoint: a JSON POST, signed with X-Webhook-Signature "
                              "(sha256=HMAC of the body) when a secret is set.", None),
    IntegrationType.EMAIL: ("Email", "An email address.", None),
}


@lru_cache(maxsize=4)
def _box(master_secret: str) -> SecretBox:
    return SecretBox(master_secret, "integrations")


# --- reading the types -----------------------------------------------------------------------------------


def event_kinds() -> list[str]:
    """The event kinds an integration may receive ("*": every kind)."""
    return [ALL_EVENTS, *(kind.value for kind in EventKind)]


def types(settings: Settings) -> IntegrationTypesRead:
    """Every integration type with its config fields, and whether this installation offers it."""
    listed = []
    for kind, (name, description, limit) in TYPES.items():
        model = CONFIGS[kind]
        fields = [ConfigFieldRead(name=field, required=info.is_required(), secret=field in SECRET_FIELDS[kind],
                                  description=info.description or "")
                  for field, info in model.model_fields.items()]
        available = kind is not IntegrationType.TELEGRAM or settings.telegram_bot_token is not None
        listed.append(IntegrationTypeRead(type=kind, name=name, description=description, available=available,
                                          rate_limit=limit, config=fields))
    return IntegrationTypesRead(types=listed, events=event_kinds())


# --- integrations ----------------------------------------------------------------------------------------


def list_integrations(session: Session, actor: Actor, project_id: int | None = None) -> list[IntegrationRead]:
    """The integrations of the actor's projects (or of the one named), oldest first."""
    reach = projects.in_reach(session, actor, project_id)
    return [_read(row) for row in repository.of_projects(session, reach)]


def get_integration(session: Session, actor: Actor, integration_id: int) -> IntegrationRead:
    """One integration (404 for one of a project the actor is not in)."""
    return _read(_find(session, actor, integration_id))


def create_integration(session: Session, settings: Settings, actor: Actor, project_id: int,
                       data: IntegrationCreate) -> IntegrationRead:
    """Check the type's config (SSRF rule included), seal it, and start telling the integration of new events."""
    projects.require_membership(session, actor.user_id, project_id, fence=actor.project_scope)
    if repository.count_in(session, project_id) >= MAX_PER_PROJECT:
        raise Conflict(f"An organization has at most {MAX_PER_PROJECT} integrations; delete one first.",
                       code="INTEGRATION_LIMIT")
    full = _checked_config(settings, data.type, data.config)
    row = repository.insert(session, Integration(
        project_id=project_id, type=data.type, name=_name(data.name), config=_shown(data.type, full),
        sealed_config=_box(settings.jwt_secret).seal(json.dumps(full)), events=_kinds(data.events),
        enabled=data.enabled, since_event_id=events.last_id(session), created_by=actor.user_id,
        created_at=clock.now(), updated_at=clock.now()))
    return _read(row)


def update_integration(session: Session, settings: Settings, actor: Actor, integration_id: int,
                       data: IntegrationUpdate) -> IntegrationRead:
    """Change what is given; a config sent back with its masked secrets keeps the secrets it had."""
    row = _find(session, actor, integration_id)
    if data.name is not None:
        row.name = _name(data.name)
    if data.config is not None:
        given = dict(data.config)
        current = opened_config(settings, row)
        for field in SECRET_FIELDS[row.type]:
            shown = row.config.get(field)
            if field in given and given[field] == shown and shown != current.get(field):
                given[field] = current.get(field)  # the masked form came back unchanged: keep the secret
        full = _checked_config(settings, row.type, given)
        row.config, row.sealed_config = _shown(row.type, full), _box(settings.jwt_secret).seal(json.dumps(full))
    if data.events is not None:
        row.events = _kinds(data.events)
    if data.enabled is not None:
        row.enabled = data.enabled
    row.updated_at = clock.now()
    session.flush()
    return _read(row)


def delete_integration(session: Session, actor: Actor, integration_id: int) -> None:
    """Remove an integration and its delivery log; messages not yet sent are not sent."""
    repository.delete(session, _find(session, actor, integration_id))


def opened_config(settings: Settings, integration: Integration) -> dict[str, Any]:
    """The integration's whole config, secrets included (for sending, never for showing)."""
    opened: dict[str, Any] = json.loads(_box(settings.jwt_secret).open(integration.sealed_config))
    return opened


def telegram_chat(link: str) -> str:
    """The chat id in a Telegram link id (what the bot's sendMessage is given)."""
    return link.rsplit("-", 1)[0]


def _find(session: Session, actor: Actor, integration_id: int) -> Integration:
    row = repository.get(session, integration_id)
    if row is None:
        raise NotFound("integration", integration_id, code="INTEGRATION_NOT_FOUND")
    try:
        projects.require_membership(session, actor.user_id, row.project_id, fence=actor.project_scope)
    except NotFound:
        raise NotFound("integration", integration_id, code="INTEGRATION_NOT_FOUND") from None
    return row


def _name(given: str) -> str:
    name = given.strip()
    if not name:
        raise Invalid("name", "The name must not be blank.")
    if any(ord(char) < 32 or ord(char) == 127 for char in name):
        raise Invalid("name", "The name must not hold control characters.")
    return name


def _kinds(given: list[str] | None) -> list[str]:
    if given is None:
        return [ALL_EVENTS]
    known = set(event_kinds())
    kinds: list[str] = []
    for raw in given:
        kind = raw.strip()
        if kind not in known:
            raise Invalid("events", f"Unknown event kind {kind[:100]!r}; GET /v1/integrations/types lists them.")
        if kind not in kinds:
            kinds.append(kind)
    if not kinds:
        raise Invalid("events", 'Name at least one event kind, or "*" for every kind.')
    return [ALL_EVENTS] if ALL_EVENTS in kinds else kinds


def _checked_config(settings: Settings, kind: IntegrationType, given: dict[str, Any]) -> dict[str, Any]:
    """The type's config, parsed and checked; Invalid naming the field that is wrong."""
    try:
        parsed: BaseModel = CONFIGS[kind].model_validate(given)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"])
        raise Invalid(f"config.{where}" if where else "config", f"config.{where}: {error['msg']}"
                      if where else f"config: {error['msg']}") from None
    full: dict[str, Any] = parsed.model_dump(mode="json")
    for field in URL_FIELDS & full.keys():
        targets.check_url(full[field], allow_private=settings.webhook_allow_private)
    if kind is IntegrationType.TELEGRAM:
        if settings.telegram_bot_token is None:
            raise Unavailable("No Telegram bot is set up: the operator sets CLOUDLET_TELEGRAM_BOT_TOKEN.",
                              code="TELEGRAM_NOT_CONFIGURED")
        link = full["chat_id"].strip()
        chat = telegram_chat(link)
        if not CHAT_ID.fullmatch(chat) or not hmac.compare_digest(telegram.link_id(settings, chat), link):
            raise Invalid("config.chat_id", "This is not a link id the bot gave: send /start to the bot in the "
                          "chat and use the link id of its answer.", code="TELEGRAM_LINK_ID_INVALID")
        full["chat_id"] = link
    return full


def _shown(kind: IntegrationType, full: dict[str, Any]) -> dict[str, Any]:
    """The config as it is shown: secrets masked."""
    shown: dict[str, Any] = {}
    for field, value in full.items():
        if field not in SECRET_FIELDS[kind] or value is None:
            shown[field] = value
        elif field in URL_FIELDS:
            shown[field] = mask_url(str(value))
        elif kind is IntegrationType.TELEGRAM:
            shown[field] = telegram_chat(str(value))
        else:
            shown[field] = mask_secret(str(value))
    return shown


def mask_url(url: str) -> str:
    """A URL without what may be its token: the last path segment, the query and any user info."""
    parsed = httpx.URL(url)
    segments = [part for part in parsed.path.split("/") if part]
    path = "/".join([*segments[:-1], MASK]) if segments else ""
    query = f"?{MASK}" if parsed.query else ""
    return f"{parsed.scheme}://{parsed.netloc.decode('ascii')}/{path}{query}"


def mask_secret(secret: str) -> str:
    """A secret as it is shown: its last four characters, when it is long enough to spare them."""
    return MASK + secret[-4:] if len(secret) >= 16 else MASK


def _read(row: Integration) -> IntegrationRead:
    return IntegrationRead(id=row.id, project_id=row.project_id, type=row.type, name=row.name,
                           config=dict(row.config), events=list(row.events), enabled=row.enabled,
                           created_at=row.created_at, updated_at=row.updated_at)


# --- deliveries ------------------------------------------------------------------------------------------


def send_test(session: Session, actor: Actor, integration_id: int) -> DeliveryRead:
    """Queue a test message to the integration, through the same path as events; the worker sends it after the
    commit."""
    row = _find(session, actor, integration_id)
    test = {"id": 0, "kind": TEST_KIND, "subject": f"integration:{row.id}",
            "payload": {"message": f"This is a test message from Cloudlet for the integration {row.name!r}."},
            "created_at": clock.now().isoformat()}
    delivery = _queue(session, row, [test], test=True)
    session.info.setdefault(ENQUEUED_KEY, []).append((delivery.id, delivery.workflow_id))
    return read_delivery(delivery)


def deliveries(session: Session, actor: Actor, integration_id: int, *,
               limit: int = 100) -> tuple[list[DeliveryRead], int]:
    """An integration's newest deliveries (newest first), and how many its log holds."""
    row = _find(session, actor, integration_id)
    found = [read_delivery(d) for d in repository.deliveries_of(session, row.id, limit)]
    return found, repository.count_deliveries(session, row.id)


def get_delivery(session: Session, delivery_id: int) -> DeliveryRead:
    """One delivery, whoever's (for the worker and tests)."""
    found = repository.get_delivery(session, delivery_id)
    if found is None:
        raise NotFound("delivery", delivery_id)
    return read_delivery(found)


def pending(session: Session, limit: int = 500) -> list[tuple[int, str]]:
    """(id, workflow id) of the deliveries not yet finished, which the worker's sweep makes sure run."""
    return repository.pending(session, limit)


def fan_out(session: Session, *, limit: int = READ_BATCH) -> list[tuple[int, str]]:
    """Take the events recorded since the last reading and queue their deliveries, in the caller's transaction;
    (id, workflow id) of the deliveries queued. Nothing when another reading took the same events first."""
    start = repository.cursor(session)
    if start is None:  # the first reading: from the oldest integration's start, or from now without any
        oldest = repository.oldest_start(session)
        repository.start_cursor(session, oldest if oldest is not None else events.last_id(session))
        start = repository.cursor(session)
        if start is None:
            return []
    # up to the first event that has not settled: the cursor never passes an id whose neighbours may still commit
    settled = clock.now() - SETTLE
    found = list(itertools.takewhile(lambda event: event.created_at < settled,
                                     events.after(session, start, limit=limit)))
    if not found or not repository.move_cursor(session, start, found[-1].id):
        return []
    queued: list[tuple[int, str]] = []
    project_ids = {event.project_id for event in found if event.project_id is not None}
    for integration in repository.enabled_in(session, project_ids):
        told = [_event(event) for event in found if event.project_id == integration.project_id
                and event.id > integration.since_event_id and _receives(integration.events, event.kind)]
        for first in range(0, len(told), EVENTS_PER_MESSAGE):
            delivery = _queue(session, integration, told[first:first + EVENTS_PER_MESSAGE], test=False)
            queued.append((delivery.id, delivery.workflow_id))
    return queued


def _receives(kinds: list[str], kind: str) -> bool:
    return ALL_EVENTS in kinds or kind in kinds


def _event(event: EventRead) -> dict[str, Any]:
    return {"id": event.id, "kind": event.kind, "subject": event.subject, "payload": event.payload,
            "created_at": event.created_at.isoformat()}


def _queue(session: Session, integration: Integration, told: list[dict[str, Any]], *,
           test: bool) -> IntegrationDelivery:
    return repository.insert_delivery(session, IntegrationDelivery(
        workflow_id=f"cloudlet-integration-{uuid.uuid4().hex}", integration_id=integration.id, test=test,
        kinds=[str(event["kind"]) for event in told], events=told,
        status=DeliveryStatus.PENDING, attempts=0, next_attempt_at=clock.now(), created_at=clock.now()))


def read_delivery(delivery: IntegrationDelivery) -> DeliveryRead:
    """How a delivery reads in the log."""
    return DeliveryRead(id=delivery.id, integration_id=delivery.integration_id, test=delivery.test,
                        kinds=list(delivery.kinds), event_ids=[int(e["id"]) for e in delivery.events if e.get("id")],
                        status=delivery.status, attempts=delivery.attempts,
                        last_status_code=delivery.last_status_code, last_error=delivery.last_error,
                        next_attempt_at=delivery.next_attempt_at, created_at=delivery.created_at,
                        delivered_at=delivery.delivered_at)
