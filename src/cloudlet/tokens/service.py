"""Minting, checking, listing and revoking API tokens."""

from __future__ import annotations

import ipaddress
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from cloudlet.kit import clock, locks
from cloudlet.kit.errors import Conflict, Forbidden, Invalid, NotFound, Unauthenticated
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
         parent: ApiToken | None = None, max_tokens: int | None = None) -> MintedToken:
    """Create a token with a fresh 256-bit secret; the caller cannot grant more than it holds.

    A token minted by another token (`parent`) also stays inside the parent's fences: the same
    project, an expiry no later than the parent's, addresses within the parent's allow-list and
    rate limits no higher than the parent's. A user holds at most `max_tokens` tokens (409
    TOO_MANY_TOKENS beyond), so that per-token limits also bound a customer.
    """
    wanted = abilities.normalize(data.abilities if data.abilities else [abilities.Ability.ALL.value])
    if not abilities.covers(caller_abilities, wanted):
        raise Forbidden("A token cannot grant abilities its creator does not hold.", code="INSUFFICIENT_SCOPE")
    if max_tokens is not None:
        locks.hold(session, f"tokens-of-user:{user_id}")  # two mints at once cannot both pass the count
    if max_tokens is not None and repository.count_for_user(session, user_id) >= max_tokens:
        raise Conflict(f"An account can hold at most {max_tokens} API tokens; delete one you no longer use.",
                       code="TOO_MANY_TOKENS")
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
    per_minute = data.rate_limit_per_minute or default_per_minute
    per_hour = data.rate_limit_per_hour or default_per_hour
    if parent is not None:
        for field, asked, held in (("rate_limit_per_minute", data.rate_limit_per_minute, parent.rate_limit_per_minute),
                                   ("rate_limit_per_hour", data.rate_limit_per_hour, parent.rate_limit_per_hour)):
            if asked is not None and asked > held:
                raise Invalid(field, "A token's rate limits cannot exceed those of the token that creates it.")
        per_minute = min(per_minute, parent.rate_limit_per_minute)
        per_hour = min(per_hour, parent.rate_limit_per_hour)
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
        rate_limit_per_minute=per_minute,
        rate_limit_per_hour=per_hour,
        request_count=0,
        created_at=now,
    ))
    return MintedToken(token, f"{token.id}|{secret}")


@dataclass(frozen=True)
class TokenFacts:
    """What authenticating a request needs of a token: a copy that outlives the session it was read in.

    Callers cache it for at most a second, so a request with a known token costs no query.
    """

    id: int
    user_id: int
    project_id: int | None
    abilities: tuple[str, ...]
    ip_allowlist: tuple[str, ...]
    is_active: bool
    expires_at: datetime | None
    rate_limit_per_minute: int
    rate_limit_per_hour: int

    @classmethod
    def of(cls, token: ApiToken) -> TokenFacts:
        """The facts of a token row."""
        return cls(id=token.id, user_id=token.user_id, project_id=token.project_id,
                   abilities=tuple(token.abilities), ip_allowlist=tuple(token.ip_allowlist or ()),
                   is_active=token.is_active, expires_at=token.expires_at,
                   rate_limit_per_minute=token.rate_limit_per_minute, rate_limit_per_hour=token.rate_limit_per_hour)


def lookup_key(presented: str) -> str | None:
    """The key a presented `<id>|<secret>` (or bare secret) is found under: its secret's digest (None if no secret)."""
    _, _, secret = presented.rpartition("|")
    return digest(secret) if secret.startswith(SECRET_PREFIX) else None


def find(session: Session, presented: str) -> ApiToken | None:
    """The token a presented credential names, whatever its state (one query; its user comes with it)."""
    key = lookup_key(presented)
    return repository.find_by_hash(session, key) if key is not None else None


def check(facts: TokenFacts, presented: str, ip: str | None) -> TokenFacts:
    """The facts, if the token they describe may be used now from ip with the presented credential.

    Raises Unauthenticated (INVALID_API_KEY, INACTIVE_API_KEY, EXPIRED_API_KEY) or Forbidden
    (IP_NOT_ALLOWED). Pure computation: it runs on cached facts as well as on fresh ones.
    """
    ident = presented.partition("|")[0] if "|" in presented else None
    if ident is not None and ident != str(facts.id):
        raise Unauthenticated("API key is invalid or malformed.", code="INVALID_API_KEY")
    if not facts.is_active:
        raise Unauthenticated("API key has been deactivated.", code="INACTIVE_API_KEY")
    if facts.expires_at is not None and facts.expires_at <= clock.now():
        raise Unauthenticated("API key has expired.", code="EXPIRED_API_KEY")
    if facts.ip_allowlist and not _ip_allowed(ip, facts.ip_allowlist):
        raise Forbidden(f"Request IP {ip} is not in this key's whitelist.", code="IP_NOT_ALLOWED")
    return facts


def verify(session: Session, presented: str, ip: str | None) -> ApiToken:
    """The token a presented `<id>|<secret>` (or bare secret) names, if it may be used now from ip.

    Raises as `check` does.
    """
    token = find(session, presented)
    if token is None:
        raise Unauthenticated("API key is invalid or malformed.", code="INVALID_API_KEY")
    check(TokenFacts.of(token), presented, ip)
    return token


def _ip_allowed(ip: str | None, cidrs: Sequence[str]) -> bool:
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


FENCES = ("ip_allowlist", "expires_at", "rate_limit_per_minute", "rate_limit_per_hour")


def _refuse_stronger(caller_abilities: list[str], token: ApiToken, verb: str) -> None:
    if not abilities.covers(caller_abilities, token.abilities):
        raise Forbidden(f"A token cannot {verb} a token that holds abilities it does not.",
                        code="INSUFFICIENT_SCOPE")


def _refuse_widening(token: ApiToken, data: TokenUpdate) -> None:
    # A stolen or leaked token must not be able to lift its own (or a sibling's) fences: only the
    # signed-in user sets allow-lists, expiry and limits. Renaming and switching off stay allowed.
    fenced = sorted(name for name in FENCES if name in data.model_fields_set)
    if fenced:
        raise Forbidden(f"Only a signed-in session can change a token's {', '.join(fenced)}; "
                        "an API token cannot.", code="SESSION_REQUIRED")
    if data.is_active and not token.is_active:
        raise Forbidden("Only a signed-in session can switch a token back on; an API token cannot.",
                        code="SESSION_REQUIRED")


def update_token(session: Session, user_id: int, token_id: int, data: TokenUpdate,
                 caller_abilities: list[str] | None = None) -> ApiToken:
    """Rename, (de)activate, re-limit, re-fence or re-date a token.

    `caller_abilities` None means the signed-in user, who may set anything the schema allows. A
    token doing the change (its abilities given) may only touch a token holding no more than it,
    and only rename it or switch it off: fences are the user's to set, never a token's.
    """
    token = get_token(session, user_id, token_id)
    if caller_abilities is not None:
        _refuse_stronger(caller_abilities, token, "change")
        _refuse_widening(token, data)
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


def revoke(session: Session, user_id: int, token_id: int, caller_abilities: list[str] | None = None) -> None:
    """Delete a token for good; requests with it fail from now on.

    A token doing it (its abilities given) may delete only tokens that hold no more than it.
    """
    token = get_token(session, user_id, token_id)
    if caller_abilities is not None:
        _refuse_stronger(caller_abilities, token, "delete")
    repository.delete(session, token)


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
