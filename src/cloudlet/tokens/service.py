"""Minting, checking, listing and revoking API tokens."""

from __future__ import annotations

import ipaddress
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from cloudlet.kit import clock
from cloudlet.kit.errors import Forbidden, Invalid, NotFound, Unauthenticated
from cloudlet.kit.ids import digest
from cloudlet.kit.pagination import Page
from cloudlet.tokens import abilities, repository
from cloudlet.tokens.models import ApiToken
from cloudlet.tokens.schemas import TokenCreate, TokenUpdate, TokenUsageRead

SECRET_PREFIX = "cl_"
PREFIX_LENGTH = len(SECRET_PREFIX) + 8
# 288 random bits: the visible prefix shows 32 of them, so 256 stay secret.
SECRET_BYTES = 36


@dataclass(frozen=True)
class MintedToken:
    """A new token and its plaintext, which exists only in this answer."""

    token: ApiToken
    plaintext: str  # "<id>|<secret>"

    @property
    def secret(self) -> str:
        """The bare secret, which authenticates on its own (the form CyberPanel and Shardlyn show)."""
        return self.plaintext.partition("|")[2]


def _check_cidrs(cidrs: list[str]) -> list[str]:
    result: list[str] = []
    for cidr in cidrs:
        try:
            network = str(ipaddress.ip_network(cidr.strip(), strict=False))
        except ValueError:
            raise Invalid("ip_allowlist", f"Not an IP address or CIDR range: {cidr!r}.") from None
        if network not in result:
            result.append(network)
    return result


def _within(cidrs: list[str], fence: list[str]) -> bool:
    fences = [ipaddress.ip_network(f) for f in fence]
    for cidr in cidrs:
        network = ipaddress.ip_network(cidr)
        if not any(network.version == f.version and network.subnet_of(f) for f in fences):  # type: ignore[arg-type]
            return False
    return True


def mint(session: Session, *, user_id: int, project_id: int | None, data: TokenCreate,
         caller_abilities: list[str], default_per_minute: int, default_per_hour: int,
         parent: ApiToken | None = None) -> MintedToken:
    """Create a token with a fresh 256-bit secret; the caller cannot grant more than it holds.

    A token minted by another token (`parent`) also stays inside the parent's fences: the same
    project, an expiry no later than the parent's and addresses within the parent's allow-list.
    """
    wanted = abilities.normalize(data.abilities if data.abilities else [abilities.Ability.ALL.value])
    if not abilities.covers(caller_abilities, wanted):
        raise Forbidden("A token cannot grant abilities its creator does not hold.", code="INSUFFICIENT_SCOPE")
    now = clock.now()
    expires_at: datetime | None = data.expires_at
    if data.expires_in is not None:
        expires_at = now + timedelta(seconds=data.expires_in)
    if expires_at is not None and expires_at <= now:
        raise Invalid("expires_at", "The expiry must be in the future.")
    allowlist = _check_cidrs(data.ip_allowlist)
    if parent is not None:
        if parent.project_id is not None:
            project_id = parent.project_id
        if parent.expires_at is not None:
            if expires_at is None:
                expires_at = parent.expires_at
            elif expires_at > parent.expires_at:
                raise Invalid("expires_at", "A token cannot outlive the token that creates it.")
        if parent.ip_allowlist:
            if not allowlist:
                allowlist = list(parent.ip_allowlist)
            elif not _within(allowlist, parent.ip_allowlist):
                raise Invalid("ip_allowlist", "A token's allow-list must lie within its creator's allow-list.")
    secret = SECRET_PREFIX + secrets.token_hex(SECRET_BYTES)
    token = repository.insert(session, ApiToken(
        user_id=user_id,
        project_id=project_id,
        name=data.name,
        prefix=secret[:PREFIX_LENGTH],
        secret_hash=digest(secret),
        abilities=wanted,
        ip_allowlist=allowlist,
        is_active=True,
        expires_at=expires_at,
        rate_limit_per_minute=data.rate_limit_per_minute or default_per_minute,
        rate_limit_per_hour=data.rate_limit_per_hour or default_per_hour,
        request_count=0,
        created_at=now,
    ))
    return MintedToken(token, f"{token.id}|{secret}")


def verify(session: Session, presented: str, ip: str | None) -> ApiToken:
    """The token a presented `<id>|<secret>` (or bare secret) names, if it may be used now from ip.

    Raises Unauthenticated (INVALID_API_KEY, INACTIVE_API_KEY, EXPIRED_API_KEY) or Forbidden
    (IP_NOT_ALLOWED).
    """
    _, _, secret = presented.rpartition("|")
    token = repository.find_by_hash(session, digest(secret)) if secret.startswith(SECRET_PREFIX) else None
    ident = presented.partition("|")[0] if "|" in presented else None
    if token is None or (ident is not None and ident != str(token.id)):
        raise Unauthenticated("API key is invalid or malformed.", code="INVALID_API_KEY")
    if not token.is_active:
        raise Unauthenticated("API key has been deactivated.", code="INACTIVE_API_KEY")
    if token.expires_at is not None and token.expires_at <= clock.now():
        raise Unauthenticated("API key has expired.", code="EXPIRED_API_KEY")
    if token.ip_allowlist and not _ip_allowed(ip, token.ip_allowlist):
        raise Forbidden(f"Request IP {ip} is not in this key's whitelist.", code="IP_NOT_ALLOWED")
    return token


def _ip_allowed(ip: str | None, cidrs: list[str]) -> bool:
    if ip is None:
        return False
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return False
    return any(address in ipaddress.ip_network(cidr, strict=False) for cidr in cidrs)


def list_tokens(session: Session, user_id: int) -> list[ApiToken]:
    """The user's tokens, without secrets (only their digests are stored)."""
    return repository.list_for_user(session, user_id)


def get_token(session: Session, user_id: int, token_id: int) -> ApiToken:
    """One of the user's tokens; another user's token is reported as not found."""
    token = repository.get_owned(session, user_id, token_id)
    if token is None:
        raise NotFound("API key", token_id, code="KEY_NOT_FOUND")
    return token


def update_token(session: Session, user_id: int, token_id: int, data: TokenUpdate,
                 caller_abilities: list[str] | None = None) -> ApiToken:
    """Rename, (de)activate, re-limit, re-fence or re-date a token.

    With `caller_abilities` (a token doing the change), the token changed must not hold more than
    the caller: a weak key may not lift the fences of a stronger one.
    """
    token = get_token(session, user_id, token_id)
    if caller_abilities is not None and not abilities.covers(caller_abilities, token.abilities):
        raise Forbidden("A token cannot change a token that holds abilities it does not.", code="INSUFFICIENT_SCOPE")
    if data.name is not None:
        token.name = data.name
    if data.is_active is not None:
        token.is_active = data.is_active
    if data.ip_allowlist is not None:
        token.ip_allowlist = _check_cidrs(data.ip_allowlist)
    if "expires_at" in data.model_fields_set:
        if data.expires_at is not None and data.expires_at <= clock.now():
            raise Invalid("expires_at", "The expiry must be in the future.")
        token.expires_at = data.expires_at
    if data.rate_limit_per_minute is not None:
        token.rate_limit_per_minute = data.rate_limit_per_minute
    if data.rate_limit_per_hour is not None:
        token.rate_limit_per_hour = data.rate_limit_per_hour
    session.flush()
    return token


def revoke(session: Session, user_id: int, token_id: int) -> None:
    """Delete a token for good; requests with it fail from now on."""
    repository.delete(session, get_token(session, user_id, token_id))


@dataclass(frozen=True)
class TokenUse:
    """One request made with a token."""

    token_id: int
    endpoint: str
    method: str
    ip: str | None
    status: int
    elapsed_ms: int


def record_uses(session: Session, uses: Sequence[TokenUse]) -> None:
    """Count requests on their tokens (last use, request count) and append them to the usage log.

    One UPDATE per token and one multi-row INSERT for the batch; the uses of a token revoked
    meanwhile (even by the very request being recorded) are dropped.
    """
    at = clock.now()
    by_token: dict[int, list[TokenUse]] = {}
    for use in uses:
        by_token.setdefault(use.token_id, []).append(use)
    rows = []
    for token_id, token_uses in by_token.items():
        if repository.count_uses(session, token_id, len(token_uses), at=at, ip=token_uses[-1].ip):
            rows += [{"token_id": token_id, "endpoint": u.endpoint[:500], "method": u.method,
                      "ip_address": u.ip, "response_status": u.status, "response_time_ms": u.elapsed_ms,
                      "created_at": at} for u in token_uses]
    repository.insert_usage(session, rows)


def usage(session: Session, user_id: int, token_id: int, *, limit: int, offset: int) -> Page[TokenUsageRead]:
    """A page of one token's usage log, newest first."""
    get_token(session, user_id, token_id)
    rows, total = repository.usage_page(session, token_id, limit=limit, offset=offset)
    return Page(items=[TokenUsageRead.model_validate(r, from_attributes=True) for r in rows],
                total=total, limit=limit, offset=offset)
