"""CyberPanel shapes: scope names are CyberPanel's where it has one, the canonical ability otherwise."""

from __future__ import annotations

from cloudlet.tokens.abilities import ABILITY_TO_CYBERPANEL, CYBERPANEL_SCOPES, DESCRIPTIONS, Ability


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
