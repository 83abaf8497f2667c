"""Primary surface: personal access tokens at /api/me/api-tokens (Evorxa's auth section).

GET lists the caller's tokens without secrets, POST mints one and shows its plaintext once,
DELETE revokes. PATCH /api/me/api-tokens/{id} is Cloudlet's extension: it sets `name`,
`is_active`, `ip_allowlist` (CIDRs; empty allows every address), `expires_at` (null removes it)
and the per-token `rate_limit_per_minute` / `rate_limit_per_hour`; abilities never change. Fences
(allow-list, expiry, limits) and switching a token back on take a signed-in session: a token caller
gets 403 SESSION_REQUIRED, and may rename, switch off or delete only tokens holding no more than it.
POST also accepts those fields, plus `expires_in` (seconds). The reference asks scope "all"
for these endpoints, so they take a credential holding `*`.
"""

from __future__ import annotations

from fastapi import APIRouter, Response
from pydantic import BaseModel

from cloudlet.kit.serial import IsoMillis
from cloudlet.surfaces.deps import AppSettings, DbSession, FullCaller
from cloudlet.surfaces.params import PathId
from cloudlet.tokens import service as tokens
from cloudlet.tokens.models import ApiToken
from cloudlet.tokens.schemas import TokenCreate, TokenUpdate

router = APIRouter(prefix="/api/me/api-tokens", tags=["primary"])


class TokenRead(BaseModel):
    """A token as the list shows it: never the secret, only its visible prefix."""

    id: int
    name: str
    abilities: list[str]
    last_used_at: IsoMillis | None
    created_at: IsoMillis
    prefix: str
    expires_at: IsoMillis | None
    is_active: bool
    ip_allowlist: list[str]
    rate_limit_per_minute: int
    rate_limit_per_hour: int


class TokenCreated(BaseModel):
    """A new token with its plaintext `<id>|<secret>`, shown this once."""

    id: int
    name: str
    abilities: list[str]
    token: str
    created_at: IsoMillis


def _read(token: ApiToken) -> TokenRead:
    return TokenRead.model_validate(token, from_attributes=True)


@router.get("", response_model=list[TokenRead], summary="List your API tokens (without secrets)")
def list_tokens(caller: FullCaller, db: DbSession) -> list[TokenRead]:
    """The caller's tokens, oldest first."""
    return [_read(t) for t in tokens.list_tokens(db, caller.user_id)]


@router.post("", status_code=201, response_model=TokenCreated, summary="Create an API token")
def create_token(body: TokenCreate, caller: FullCaller, db: DbSession, settings: AppSettings) -> TokenCreated:
    """Mint a token; `abilities` defaults to ["*"]. The plaintext is returned only once."""
    minted = tokens.mint(db, user_id=caller.user_id, project_id=caller.project_scope, data=body,
                         caller_abilities=caller.abilities, default_per_minute=settings.token_rate_per_minute,
                         default_per_hour=settings.token_rate_per_hour, parent=caller.token,
                         max_tokens=settings.max_tokens_per_user)
    token = minted.token
    return TokenCreated(id=token.id, name=token.name, abilities=token.abilities, token=minted.plaintext,
                        created_at=token.created_at)


@router.patch("/{token_id}", response_model=TokenRead, summary="Change a token's state, fences or limits")
def update_token(token_id: PathId, body: TokenUpdate, caller: FullCaller, db: DbSession) -> TokenRead:
    """Apply the fields sent; the secret and abilities stay as they are."""
    return _read(tokens.update_token(db, caller.user_id, token_id, body,
                                     caller_abilities=None if caller.is_session else caller.abilities))


@router.delete("/{token_id}", status_code=204, summary="Revoke an API token")
def delete_token(token_id: PathId, caller: FullCaller, db: DbSession) -> Response:
    """Delete the token; requests with it fail from now on."""
    tokens.revoke(db, caller.user_id, token_id,
                  caller_abilities=None if caller.is_session else caller.abilities)
    return Response(status_code=204)
