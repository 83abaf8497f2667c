"""Shardlyn surface: API tokens for CI/CD at /v1/api-tokens.

Shardlyn shows ids as strings, so ids are rendered as strings and accepted as strings in paths.
The token value is the bare secret, returned only at creation. POST takes `name`, `expires_in`
(seconds) and, as an extension, `abilities` (default ["*"]).
"""

from __future__ import annotations

from fastapi import APIRouter, Response
from pydantic import BaseModel, Field

from cloudlet.kit.errors import NotFound
from cloudlet.kit.ids import parse_id
from cloudlet.kit.serial import IsoSeconds
from cloudlet.surfaces.deps import AppSettings, DbSession, FullCaller
from cloudlet.tokens import service as tokens
from cloudlet.tokens.models import ApiToken
from cloudlet.tokens.schemas import TokenCreate

router = APIRouter(prefix="/v1/api-tokens", tags=["shardlyn"])


class ShardlynTokenCreate(BaseModel):
    """Shardlyn's create request."""

    name: str = Field(min_length=1, max_length=200)
    expires_in: int | None = Field(default=None, gt=0, le=10 * 365 * 86400)
    abilities: list[str] = Field(default_factory=list)


class ShardlynTokenRead(BaseModel):
    """A token in the list: never the secret."""

    id: str
    name: str
    prefix: str
    abilities: list[str]
    expires_at: IsoSeconds | None
    last_used_at: IsoSeconds | None
    created_at: IsoSeconds


class ShardlynTokenCreated(BaseModel):
    """A new token with its value, shown this once."""

    id: str
    name: str
    token: str
    expires_at: IsoSeconds | None
    created_at: IsoSeconds


def _read(token: ApiToken) -> ShardlynTokenRead:
    return ShardlynTokenRead(id=str(token.id), name=token.name, prefix=token.prefix, abilities=token.abilities,
                             expires_at=token.expires_at, last_used_at=token.last_used_at,
                             created_at=token.created_at)


def _token_id(raw: str) -> int:
    found = parse_id(raw)
    if found is None:
        raise NotFound("API key", raw, code="KEY_NOT_FOUND")
    return found


@router.get("", response_model=list[ShardlynTokenRead], summary="List tokens")
def list_tokens(caller: FullCaller, db: DbSession) -> list[ShardlynTokenRead]:
    """The caller's tokens, oldest first."""
    return [_read(t) for t in tokens.list_tokens(db, caller.user_id)]


@router.post("", status_code=201, response_model=ShardlynTokenCreated, summary="Create token")
def create_token(body: ShardlynTokenCreate, caller: FullCaller, db: DbSession,
                 settings: AppSettings) -> ShardlynTokenCreated:
    """Mint a token; its value is returned only once."""
    data = TokenCreate(name=body.name, expires_in=body.expires_in, abilities=body.abilities)
    minted = tokens.mint(db, user_id=caller.user_id, project_id=caller.project_scope, data=data,
                         caller_abilities=caller.abilities, default_per_minute=settings.token_rate_per_minute,
                         default_per_hour=settings.token_rate_per_hour, parent=caller.token,
                         max_tokens=settings.max_tokens_per_user)
    token = minted.token
    return ShardlynTokenCreated(id=str(token.id), name=token.name, token=minted.secret,
                                expires_at=token.expires_at, created_at=token.created_at)


@router.delete("/{token_id}", status_code=204, summary="Delete token")
def delete_token(token_id: str, caller: FullCaller, db: DbSession) -> Response:
    """Revoke the token; requests with it fail from now on."""
    tokens.revoke(db, caller.user_id, _token_id(token_id),
                  caller_abilities=None if caller.is_session else caller.abilities)
    return Response(status_code=204)
