"""CyberPanel shapes: scope names are CyberPanel's where it has one, the canonical ability otherwise."""

from __future__ import annotations

import ipaddress
from datetime import datetime

from pydantic import BaseModel, Field, field_validator

from cloudlet.kit.serial import IsoSeconds
from cloudlet.tokens.abilities import ABILITY_TO_CYBERPANEL, CYBERPANEL_SCOPES, DESCRIPTIONS, Ability
from cloudlet.tokens.models import ApiToken
from cloudlet.tokens.schemas import TokenCreate, TokenUpdate


def scope_names(abilities: list[str]) -> list[str]:
    """Abilities as CyberPanel names them."""
    return [ABILITY_TO_CYBERPANEL.get(a, a) for a in abilities]


def scopes_catalogue() -> list[dict[str, str]]:
    """CyberPanel's scopes first, then the abilities that have no CyberPanel name."""
    listed = [{"scope": name, "description": DESCRIPTIONS[ability]} for name, ability in CYBERPANEL_SCOPES.items()
              if name != "all"]
    listed += [{"scope": a.value, "description": DESCRIPTIONS[a]} for a in Ability
               if a.value not in ABILITY_TO_CYBERPANEL]
    listed.append({"scope": "all", "description": DESCRIPTIONS[Ability.ALL]})
    return listed


def _cidrs(values: list[str] | None) -> list[str] | None:
    # Checked here too, so that a bad entry is reported under CyberPanel's field name.
    for value in values or []:
        try:
            ipaddress.ip_network(value.strip(), strict=False)
        except ValueError:
            raise ValueError(f"not an IP address or CIDR range: {value!r}") from None
    return values


class ApiKeyCreate(BaseModel):
    """CyberPanel's request for a new key: its scopes, and optionally fences and limits."""

    name: str = Field(min_length=1, max_length=200)
    scopes: list[str] = Field(min_length=1)
    ip_whitelist: list[str] = Field(default_factory=list, max_length=100)
    expires_at: datetime | None = None
    rate_limit_per_minute: int | None = Field(default=None, ge=1, le=100_000)
    rate_limit_per_hour: int | None = Field(default=None, ge=1, le=10_000_000)

    _ip = field_validator("ip_whitelist")(_cidrs)

    def to_token(self) -> TokenCreate:
        """The same request in the token service's words."""
        return TokenCreate(name=self.name, abilities=self.scopes, ip_allowlist=self.ip_whitelist,
                           expires_at=self.expires_at, rate_limit_per_minute=self.rate_limit_per_minute,
                           rate_limit_per_hour=self.rate_limit_per_hour)


class ApiKeyUpdate(BaseModel):
    """Changes to a key; only the fields sent are applied (`expires_at: null` removes the expiry)."""

    name: str | None = Field(default=None, min_length=1, max_length=200)
    is_active: bool | None = None
    ip_whitelist: list[str] | None = Field(default=None, max_length=100)
    expires_at: datetime | None = None
    rate_limit_per_minute: int | None = Field(default=None, ge=1, le=100_000)
    rate_limit_per_hour: int | None = Field(default=None, ge=1, le=10_000_000)

    _ip = field_validator("ip_whitelist")(_cidrs)

    def to_token(self) -> TokenUpdate:
        """The same change in the token service's words."""
        values = self.model_dump(exclude_unset=True)
        if "ip_whitelist" in values:
            values["ip_allowlist"] = values.pop("ip_whitelist")
        return TokenUpdate(**values)


class ApiKeyRead(BaseModel):
    """A key's metadata as CyberPanel lists it; never the key itself."""

    id: int
    name: str
    key_prefix: str
    scopes: list[str]
    is_active: bool
    ip_whitelist: list[str]
    expires_at: IsoSeconds | None
    last_used_at: IsoSeconds | None
    last_used_ip: str | None
    request_count: int
    rate_limit_per_minute: int
    rate_limit_per_hour: int
    created_at: IsoSeconds

    @classmethod
    def of(cls, token: ApiToken) -> ApiKeyRead:
        """Render a token."""
        return cls(id=token.id, name=token.name, key_prefix=token.prefix, scopes=scope_names(token.abilities),
                   is_active=token.is_active, ip_whitelist=list(token.ip_allowlist), expires_at=token.expires_at,
                   last_used_at=token.last_used_at, last_used_ip=token.last_used_ip,
                   request_count=token.request_count, rate_limit_per_minute=token.rate_limit_per_minute,
                   rate_limit_per_hour=token.rate_limit_per_hour, created_at=token.created_at)


class ApiKeyCreated(ApiKeyRead):
    """A new key's metadata and the key, shown this once."""

    api_key: str


class UsageLogRead(BaseModel):
    """One request made with a key."""

    endpoint: str
    method: str
    ip_address: str | None
    response_status: int
    response_time_ms: int
    created_at: IsoSeconds
