"""CyberPanel surface: API keys at /api/v1/account/api-keys.

The reference documents the list and the usage log; creating (POST), changing (PATCH) and
deleting (DELETE) a key follow the same envelope and need account:write. A new key is shown
once, as a bare secret that authenticates on every surface. A key may only create keys whose
scopes it holds itself, and only change or delete keys that hold no more than it does; a key's
IP whitelist, expiry and rate limits (and switching it back on) are changed only by a signed-in
session (403 SESSION_REQUIRED for a key). An account holds at most max_tokens_per_user keys (409).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from cloudlet.auth.caller import Caller
from cloudlet.surfaces.cyberpanel.errors import envelope
from cloudlet.surfaces.cyberpanel.schemas import ApiKeyCreate, ApiKeyCreated, ApiKeyRead, ApiKeyUpdate, UsageLogRead
from cloudlet.surfaces.deps import AppSettings, DbSession, requires
from cloudlet.surfaces.params import Offset, PathId
from cloudlet.tokens import service as tokens
from cloudlet.tokens.abilities import Ability

router = APIRouter(prefix="/api/v1/account/api-keys", tags=["cyberpanel"])

AccountReader = Annotated[Caller, requires(Ability.ACCOUNT_READ)]
AccountWriter = Annotated[Caller, requires(Ability.ACCOUNT_WRITE)]


@router.get("", summary="List API keys (metadata only, not the actual keys)")
def list_keys(caller: AccountReader, db: DbSession) -> dict[str, Any]:
    """Every key of the caller's account."""
    keys = [ApiKeyRead.of(t).model_dump(mode="json") for t in tokens.list_tokens(db, caller.user_id)]
    return envelope({"api_keys": keys, "total": len(keys)})


@router.post("", status_code=201, summary="Create an API key (the key is shown only once)")
def create_key(body: ApiKeyCreate, caller: AccountWriter, db: DbSession, settings: AppSettings) -> dict[str, Any]:
    """Mint a key with the scopes asked for, if the caller holds them."""
    minted = tokens.mint(db, user_id=caller.user_id, project_id=caller.project_scope, data=body.to_token(),
                         caller_abilities=caller.abilities, default_per_minute=settings.token_rate_per_minute,
                         default_per_hour=settings.token_rate_per_hour, parent=caller.token,
                         max_tokens=settings.max_tokens_per_user)
    data = ApiKeyCreated(**ApiKeyRead.of(minted.token).model_dump(), api_key=minted.secret)
    return envelope(data.model_dump(mode="json"),
                    "API key created successfully. Copy it now: it will not be shown again.")


@router.patch("/{key_id}", summary="Update an API key's name, state, IP whitelist, expiry or rate limits")
def update_key(key_id: PathId, body: ApiKeyUpdate, caller: AccountWriter, db: DbSession) -> dict[str, Any]:
    """Apply the fields sent; the key and its scopes stay as they are."""
    token = tokens.update_token(db, caller.user_id, key_id, body.to_token(),
                                caller_abilities=None if caller.is_session else caller.abilities)
    return envelope(ApiKeyRead.of(token).model_dump(mode="json"), "API key updated successfully")


@router.delete("/{key_id}", summary="Delete an API key")
def delete_key(key_id: PathId, caller: AccountWriter, db: DbSession) -> dict[str, Any]:
    """Revoke the key for good."""
    tokens.revoke(db, caller.user_id, key_id,
                  caller_abilities=None if caller.is_session else caller.abilities)
    return envelope({"id": key_id}, "API key deleted successfully")


@router.get("/{key_id}/usage", summary="Get API key usage logs")
def key_usage(key_id: PathId, caller: AccountReader, db: DbSession,
              limit: Annotated[int, Query(ge=1, le=100)] = 50,
              offset: Offset = 0) -> dict[str, Any]:
    """A page of the key's requests, newest first."""
    token = tokens.get_token(db, caller.user_id, key_id)
    page = tokens.usage(db, caller.user_id, key_id, limit=limit, offset=offset)
    logs = [UsageLogRead.model_validate(u.model_dump()).model_dump(mode="json") for u in page.items]
    return envelope({
        "key_id": token.id,
        "key_name": token.name,
        "usage_logs": logs,
        "pagination": {"limit": page.limit, "offset": page.offset, "total": page.total, "has_more": page.has_more},
    })
