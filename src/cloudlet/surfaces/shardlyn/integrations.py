"""Shardlyn surface: integrations at /v1/integrations (the reference lists the paths without bodies; these follow
Shardlyn's other objects: string ids, timestamps in seconds with Z, lists under a key, {"error"} with 400).

    GET    /v1/integrations                   {"integrations": [Integration], "total"}, oldest first;
                                              ?organization_id= for one organization (default: all the caller's)
    GET    /v1/integrations/types             {"types": [{"type", "name", "description", "available",
                                              "rate_limit", "config": [{"name", "required", "secret",
                                              "description"}]}], "events": [kinds, "*" for all]}
    POST   /v1/integrations                   {"type", "name", "config", "events"?, "enabled"?, "organization_id"?}
                                              -> 201 Integration
    GET    /v1/integrations/{id}              Integration
    PUT    /v1/integrations/{id}              {"name"?, "config"?, "events"?, "enabled"?} -> Integration
    DELETE /v1/integrations/{id}              204
    POST   /v1/integrations/{id}/test         202 Delivery: a test message, queued through the same path as events
    GET    /v1/integrations/{id}/deliveries   (an extension) {"deliveries": [Delivery], "total"}, newest first

Integration = {"id", "organization_id", "type" (slack, discord, telegram, webhook, email), "name", "config"
(secrets masked: a webhook URL without its token, a signing secret as ****abcd), "events", "enabled",
"created_at", "updated_at"}. config by type: slack and discord {"webhook_url"}; telegram {"chat_id": the link id
the bot answers /start with}; webhook {"url", "secret"?}; email {"address"}. A URL the SSRF rule refuses
(loopback, private, link-local, unless the operator allows them) is a 400 at once.
Delivery = {"id", "integration_id", "test", "kinds", "event_ids", "status" (pending, delivered, failed),
"attempts", "last_status_code", "last_error", "next_attempt_at", "created_at", "delivered_at"}.
An integration of an organization the caller is not in answers 404.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, Field

from cloudlet.auth.caller import Caller
from cloudlet.integrations import service as integrations
from cloudlet.integrations.models import DeliveryStatus, IntegrationType
from cloudlet.integrations.schemas import (
    DeliveryRead,
    IntegrationCreate,
    IntegrationRead,
    IntegrationTypesRead,
    IntegrationUpdate,
)
from cloudlet.kit.serial import IsoSeconds
from cloudlet.surfaces.deps import AppSettings, DbSession, requires
from cloudlet.surfaces.shardlyn.organization_schemas import chosen_organization, organization_filter, path_id
from cloudlet.tokens.abilities import Ability

router = APIRouter(prefix="/v1/integrations", tags=["shardlyn"])

Reader = Annotated[Caller, requires(Ability.INTEGRATIONS_READ)]
Writer = Annotated[Caller, requires(Ability.INTEGRATIONS_WRITE)]


class ShardlynIntegrationCreate(IntegrationCreate):
    """POST /v1/integrations."""

    organization_id: int | str | None = Field(default=None, description="Default: the caller's organization.")


class ShardlynIntegration(BaseModel):
    """An integration; its secrets masked."""

    id: str
    organization_id: str
    type: IntegrationType
    name: str
    config: dict[str, Any]
    events: list[str]
    enabled: bool
    created_at: IsoSeconds
    updated_at: IsoSeconds

    @classmethod
    def of(cls, found: IntegrationRead) -> ShardlynIntegration:
        """Render an integration."""
        return cls(id=str(found.id), organization_id=str(found.project_id), type=found.type, name=found.name,
                   config=found.config, events=found.events, enabled=found.enabled, created_at=found.created_at,
                   updated_at=found.updated_at)


class ShardlynIntegrationList(BaseModel):
    """Integrations, oldest first."""

    integrations: list[ShardlynIntegration]
    total: int


class ShardlynDelivery(BaseModel):
    """One message in an integration's log."""

    id: str
    integration_id: str
    test: bool
    kinds: list[str]
    event_ids: list[str]
    status: DeliveryStatus
    attempts: int
    last_status_code: int | None
    last_error: str | None
    next_attempt_at: IsoSeconds | None
    created_at: IsoSeconds
    delivered_at: IsoSeconds | None

    @classmethod
    def of(cls, found: DeliveryRead) -> ShardlynDelivery:
        """Render a delivery."""
        return cls(id=str(found.id), integration_id=str(found.integration_id), test=found.test, kinds=found.kinds,
                   event_ids=[str(i) for i in found.event_ids], status=found.status, attempts=found.attempts,
                   last_status_code=found.last_status_code, last_error=found.last_error,
                   next_attempt_at=found.next_attempt_at, created_at=found.created_at,
                   delivered_at=found.delivered_at)


class ShardlynDeliveryList(BaseModel):
    """An integration's deliveries, newest first, and how many its log holds."""

    deliveries: list[ShardlynDelivery]
    total: int


def _integration_id(raw: str) -> int:
    return path_id(raw, "integration")


@router.get("", response_model=ShardlynIntegrationList, summary="List integrations")
def list_integrations(
    caller: Reader,
    db: DbSession,
    organization_id: Annotated[str | None, Query(max_length=20, description="Only this organization.")] = None,
) -> ShardlynIntegrationList:
    """The integrations of the caller's organizations (or of the one named), oldest first."""
    found = integrations.list_integrations(db, caller, organization_filter(organization_id))
    return ShardlynIntegrationList(integrations=[ShardlynIntegration.of(i) for i in found], total=len(found))


@router.get("/types", response_model=IntegrationTypesRead, summary="Available types")
def integration_types(caller: Reader, settings: AppSettings) -> IntegrationTypesRead:
    """Every integration type with its config fields, and the event kinds an integration may receive."""
    return integrations.types(settings)


@router.post("", status_code=201, response_model=ShardlynIntegration, summary="Create integration")
def create_integration(body: ShardlynIntegrationCreate, caller: Writer, db: DbSession,
                       settings: AppSettings) -> ShardlynIntegration:
    """Make an integration; it is told of the events recorded from now on."""
    project_id = chosen_organization(body.organization_id, caller.project_id)
    return ShardlynIntegration.of(integrations.create_integration(db, settings, caller, project_id, body))


@router.get("/{integration_id}", response_model=ShardlynIntegration, summary="Get integration")
def get_integration(integration_id: str, caller: Reader, db: DbSession) -> ShardlynIntegration:
    """One integration."""
    return ShardlynIntegration.of(integrations.get_integration(db, caller, _integration_id(integration_id)))


@router.put("/{integration_id}", response_model=ShardlynIntegration, summary="Update integration")
def update_integration(integration_id: str, body: IntegrationUpdate, caller: Writer, db: DbSession,
                       settings: AppSettings) -> ShardlynIntegration:
    """Change the name, config, events or enabled flag; a masked secret sent back keeps its secret."""
    return ShardlynIntegration.of(
        integrations.update_integration(db, settings, caller, _integration_id(integration_id), body))


@router.delete("/{integration_id}", status_code=204, summary="Delete integration")
def delete_integration(integration_id: str, caller: Writer, db: DbSession) -> Response:
    """Remove the integration and its delivery log."""
    integrations.delete_integration(db, caller, _integration_id(integration_id))
    return Response(status_code=204)


@router.post("/{integration_id}/test", status_code=202, response_model=ShardlynDelivery,
             summary="Test integration")
def test_integration(integration_id: str, caller: Writer, db: DbSession) -> ShardlynDelivery:
    """Queue a test message; the answer is its delivery, which the log shows as it goes."""
    return ShardlynDelivery.of(integrations.send_test(db, caller, _integration_id(integration_id)))


@router.get("/{integration_id}/deliveries", response_model=ShardlynDeliveryList, summary="List deliveries")
def list_deliveries(
    integration_id: str,
    caller: Reader,
    db: DbSession,
    limit: Annotated[int, Query(ge=1, le=500, description="At most this many, newest first.")] = 100,
) -> ShardlynDeliveryList:
    """The integration's delivery log, newest first."""
    found, total = integrations.deliveries(db, caller, _integration_id(integration_id), limit=limit)
    return ShardlynDeliveryList(deliveries=[ShardlynDelivery.of(d) for d in found], total=total)

