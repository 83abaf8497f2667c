"""Shardlyn surface: webhook tokens at /v1/webhook-tokens, the secrets of a project's GitHub and GitLab hooks.

    GET    /v1/webhook-tokens        the tokens of the caller's organizations, oldest first, without secrets
    POST   /v1/webhook-tokens        {"name", "purpose", "organization_id"} -> 201 with "token" (the secret, shown
                                     this once) and the hook URLs to give GitHub and GitLab
    DELETE /v1/webhook-tokens/{id}   204; another organization's token is a 404

Like /v1/api-tokens, these need a full-access credential: a webhook token lets a git host start deploys.
"""

from __future__ import annotations

from fastapi import APIRouter, Response
from pydantic import BaseModel, Field

from cloudlet.githooks import service as githooks
from cloudlet.githooks.schemas import WebhookTokenCreate, WebhookTokenRead
from cloudlet.kit.errors import NotFound
from cloudlet.kit.ids import parse_id
from cloudlet.kit.serial import IsoSeconds
from cloudlet.surfaces.deps import AppSettings, DbSession, FullCaller
from cloudlet.surfaces.shardlyn.organization_schemas import chosen_organization

router = APIRouter(prefix="/v1/webhook-tokens", tags=["shardlyn"])


class ShardlynWebhookTokenCreate(WebhookTokenCreate):
    """POST /v1/webhook-tokens."""

    organization_id: int | str | None = Field(default=None, description="Default: the caller's organization.")


class ShardlynWebhookToken(BaseModel):
    """A token in the list: never its secret, only its first characters."""

    id: str
    organization_id: str
    name: str
    purpose: str
    prefix: str
    last_used_at: IsoSeconds | None
    created_at: IsoSeconds

    @classmethod
    def of(cls, token: WebhookTokenRead) -> ShardlynWebhookToken:
        """Render a token."""
        return cls(id=str(token.id), organization_id=str(token.project_id), name=token.name, purpose=token.purpose,
                   prefix=token.prefix, last_used_at=token.last_used_at, created_at=token.created_at)


class ShardlynWebhookTokenCreated(ShardlynWebhookToken):
    """A new token with its secret, shown this once, and where each git host should send its deliveries."""

    token: str
    github_url: str  # the payload URL for GitHub, which names the token; the secret goes in "Secret"
    gitlab_url: str  # the URL for GitLab; the secret goes in "Secret token"


def _token_id(raw: str) -> int:
    found = parse_id(raw)
    if found is None:
        raise NotFound("webhook token", raw, code="TOKEN_NOT_FOUND")
    return found


@router.get("", response_model=list[ShardlynWebhookToken], summary="List tokens")
def list_webhook_tokens(caller: FullCaller, db: DbSession) -> list[ShardlynWebhookToken]:
    """The tokens of the caller's organizations, oldest first."""
    return [ShardlynWebhookToken.of(t) for t in githooks.list_tokens(db, caller)]


@router.post("", status_code=201, response_model=ShardlynWebhookTokenCreated, summary="Create token")
def create_webhook_token(body: ShardlynWebhookTokenCreate, caller: FullCaller, db: DbSession,
                         settings: AppSettings) -> ShardlynWebhookTokenCreated:
    """Mint a token; its secret is returned only once."""
    minted = githooks.mint(db, settings, caller, chosen_organization(body.organization_id, caller.project_id), body)
    base, token = settings.public_url.rstrip("/"), minted.token
    return ShardlynWebhookTokenCreated(
        id=str(token.id), organization_id=str(token.project_id), name=token.name, purpose=token.purpose,
        prefix=token.prefix, last_used_at=token.last_used_at, created_at=token.created_at, token=minted.secret,
        github_url=f"{base}/v1/webhooks/github?token_id={token.id}", gitlab_url=f"{base}/v1/webhooks/gitlab")


@router.delete("/{token_id}", status_code=204, summary="Delete token")
def delete_webhook_token(token_id: str, caller: FullCaller, db: DbSession) -> Response:
    """Delete a token; its hooks' deliveries are refused from now on."""
    githooks.revoke(db, caller, _token_id(token_id))
    return Response(status_code=204)
