"""Shardlyn surface: the inbound git webhooks at /v1/webhooks, which take no credential but a webhook token's.

    POST /v1/webhooks/github?token_id=<id>   X-Hub-Signature-256: sha256=<HMAC-SHA256 of the raw body keyed with
                                             the token's secret, in hex>, X-GitHub-Event, X-GitHub-Delivery;
                                             a JSON body or a form-encoded one with the JSON in `payload`
    POST /v1/webhooks/gitlab                 X-Gitlab-Token: the token's secret, X-Gitlab-Event,
                                             X-Gitlab-Event-UUID; `?token_id=` may name the token too

Set up a GitHub hook with the `github_url` a new webhook token shows as its payload URL and the token as its
secret; a GitLab hook with `gitlab_url` and the token as its secret token. A verified push answers
{"status": "recorded", "event_id"} and is kept as a git.push event of the token's organization; GitHub's ping
answers {"status": "pong"}; other events are verified and answer {"status": "ignored"}. A missing or wrong
signature or token is a 401 and records nothing; every delivery counts against
CLOUDLET_GIT_HOOK_RATE_PER_ADDRESS and, once verified, CLOUDLET_GIT_HOOK_RATE_PER_TOKEN (429 past them).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request

from cloudlet.githooks import service as githooks
from cloudlet.githooks.schemas import Delivery, HookReceipt
from cloudlet.kit.ids import MAX_ID
from cloudlet.surfaces.deps import AppRuntime, DbSession, client_ip

router = APIRouter(prefix="/v1/webhooks", tags=["shardlyn"])


async def raw_body(request: Request) -> bytes:
    """The request's body as sent (signatures cover these bytes; the size cap has been applied already)."""
    return await request.body()


RawBody = Annotated[bytes, Depends(raw_body)]
TokenId = Annotated[int | None, Query(ge=1, le=MAX_ID, description="The webhook token's id.")]
# the body is read raw, so FastAPI does not describe it: the document says what the hosts send
JSON_BODY: dict[str, Any] = {"requestBody": {"required": True, "content": {
    "application/json": {"schema": {"type": "object", "description": "The git host's event payload."}}}}}


def _delivery(request: Request, runtime: AppRuntime, body: bytes, *, event: str | None, credential: str | None,
              delivery_id: str | None, token_id: int | None) -> Delivery:
    return Delivery(body=body, content_type=request.headers.get("content-type", ""), event=event,
                    credential=credential, delivery_id=delivery_id, token_id=token_id,
                    ip=client_ip(request, runtime.settings.trusted_proxies))


@router.post("/github", response_model=HookReceipt, summary="GitHub push events", openapi_extra=JSON_BODY)
def github(request: Request, body: RawBody, db: DbSession, runtime: AppRuntime, token_id: TokenId = None,
           signature: Annotated[str | None, Header(alias="X-Hub-Signature-256", max_length=200)] = None,
           event: Annotated[str | None, Header(alias="X-GitHub-Event", max_length=100)] = None,
           delivery_id: Annotated[str | None, Header(alias="X-GitHub-Delivery", max_length=100)] = None) -> HookReceipt:
    """Verify GitHub's signature and record a push for git deploy."""
    return githooks.receive_github(db, runtime.settings, runtime.limiter, _delivery(
        request, runtime, body, event=event, credential=signature, delivery_id=delivery_id, token_id=token_id))


@router.post("/gitlab", response_model=HookReceipt, summary="GitLab push events", openapi_extra=JSON_BODY)
def gitlab(request: Request, body: RawBody, db: DbSession, runtime: AppRuntime, token_id: TokenId = None,
           token: Annotated[str | None, Header(alias="X-Gitlab-Token", max_length=200)] = None,
           event: Annotated[str | None, Header(alias="X-Gitlab-Event", max_length=100)] = None,
           delivery_id: Annotated[str | None, Header(alias="X-Gitlab-Event-UUID", max_length=100)] = None
           ) -> HookReceipt:
    """Check GitLab's secret token and record a push for git deploy."""
    return githooks.receive_gitlab(db, runtime.settings, runtime.limiter, _delivery(
        request, runtime, body, event=event, credential=token, delivery_id=delivery_id, token_id=token_id))
