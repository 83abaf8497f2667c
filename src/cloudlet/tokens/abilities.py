"""The vocabulary of token abilities (Evorxa's names) and the CyberPanel scopes that alias them."""

from __future__ import annotations

import enum
from collections.abc import Iterable

from cloudlet.kit.errors import Invalid


class Ability(enum.StrEnum):
    """What a token may do. `*` is everything; `x:*` is every ability of group x."""

    ALL = "*"
    INSTANCES_READ = "instances:read"
    INSTANCES_WRITE = "instances:write"
    INSTANCES_DELETE = "instances:delete"
    AGENT_READ = "agent:read"
    AGENT_WRITE = "agent:write"
    SHIELD_READ = "shield:read"
    SHIELD_WRITE = "shield:write"
    WAF_READ = "waf:read"
    WAF_WRITE = "waf:write"
    ANALYTICS_READ = "analytics:read"
    ALERTS_READ = "alerts:read"
    ALERTS_WRITE = "alerts:write"
    WALLET_READ = "wallet:read"
    WALLET_WRITE = "wallet:write"
    ACCOUNT_READ = "account:read"
    ACCOUNT_WRITE = "account:write"
    SUPPORT_READ = "support:read"
    SUPPORT_WRITE = "support:write"
    EMAIL_READ = "email:read"
    EMAIL_WRITE = "email:write"
    INTEGRATIONS_READ = "integrations:read"
    INTEGRATIONS_WRITE = "integrations:write"


DESCRIPTIONS: dict[Ability, str] = {
    Ability.ALL: "Full Access - All Permissions",
    Ability.INSTANCES_READ: "Instances - Read",
    Ability.INSTANCES_WRITE: "Instances - Create/Modify (includes delete)",
    Ability.INSTANCES_DELETE: "Instances - Delete",
    Ability.AGENT_READ: "AI Agent - Read",
    Ability.AGENT_WRITE: "AI Agent - Chat and Link",
    Ability.SHIELD_READ: "Firewall - Read",
    Ability.SHIELD_WRITE: "Firewall - Modify",
    Ability.WAF_READ: "WAF - Read",
    Ability.WAF_WRITE: "WAF - Modify",
    Ability.ANALYTICS_READ: "Metrics and Analytics - Read",
    Ability.ALERTS_READ: "Alerts - Read Rules and Alerts",
    Ability.ALERTS_WRITE: "Alerts - Manage Rules and Acknowledge",
    Ability.WALLET_READ: "Billing - Read",
    Ability.WALLET_WRITE: "Billing - Add Funds",
    Ability.ACCOUNT_READ: "Account - Read Info",
    Ability.ACCOUNT_WRITE: "Account - Modify Settings and Keys",
    Ability.SUPPORT_READ: "Support - Read",
    Ability.SUPPORT_WRITE: "Support - Create/Reply",
    Ability.EMAIL_READ: "Email - Read",
    Ability.EMAIL_WRITE: "Email - Send",
    Ability.INTEGRATIONS_READ: "Integrations - Read Integrations and Deliveries",
    Ability.INTEGRATIONS_WRITE: "Integrations - Manage and Send Test Messages",
}

# CyberPanel's scope names, each the alias of one ability.
CYBERPANEL_SCOPES: dict[str, Ability] = {
    "all": Ability.ALL,
    "vps:read": Ability.INSTANCES_READ,
    "vps:write": Ability.INSTANCES_WRITE,
    "vps:delete": Ability.INSTANCES_DELETE,
    "account:read": Ability.ACCOUNT_READ,
    "account:write": Ability.ACCOUNT_WRITE,
    "billing:read": Ability.WALLET_READ,
    "billing:write": Ability.WALLET_WRITE,
    "support:read": Ability.SUPPORT_READ,
    "support:write": Ability.SUPPORT_WRITE,
    "email:read": Ability.EMAIL_READ,
    "email:write": Ability.EMAIL_WRITE,
}
ABILITY_TO_CYBERPANEL: dict[str, str] = {a.value: s for s, a in CYBERPANEL_SCOPES.items()}

# Holding the key grants the values too: whoever may write instances may delete them
# (CyberPanel's own delete endpoint asks only for vps:write).
IMPLIES: dict[Ability, frozenset[Ability]] = {
    Ability.INSTANCES_WRITE: frozenset({Ability.INSTANCES_DELETE}),
}

KNOWN = frozenset(a.value for a in Ability)
GROUPS = sorted({a.value.split(":")[0] for a in Ability if a is not Ability.ALL})


def normalize(names: Iterable[str]) -> list[str]:
    """Turn abilities, `x:*` wildcards and CyberPanel scopes into canonical ability strings.

    Raises Invalid naming the first unknown entry.
    """
    result: list[str] = []
    for raw in names:
        name = raw.strip()
        if name in CYBERPANEL_SCOPES:
            canonical = CYBERPANEL_SCOPES[name].value
        elif name in KNOWN or (name.endswith(":*") and name[:-2] in GROUPS):
            canonical = name
        else:
            raise Invalid("abilities", f"Unknown ability or scope: {name!r}.", code="INVALID_SCOPE")
        if canonical not in result:
            result.append(canonical)
    return result


def grants(held: Iterable[str], needed: Ability) -> bool:
    """Whether abilities `held` (canonical) allow `needed`."""
    held_set = set(held)
    if Ability.ALL.value in held_set or needed.value in held_set:
        return True
    group = needed.value.split(":")[0]
    if f"{group}:*" in held_set:
        return True
    return any(needed in IMPLIES.get(Ability(h), frozenset()) for h in held_set if h in KNOWN)


def covers(held: Iterable[str], wanted: Iterable[str]) -> bool:
    """Whether every ability in `wanted` is within `held` (a token cannot mint a stronger one)."""
    held_list = list(held)
    for name in wanted:
        if name == Ability.ALL.value or name.endswith(":*"):
            if Ability.ALL.value not in held_list and name not in held_list:
                return False
        elif not grants(held_list, Ability(name)):
            return False
    return True
