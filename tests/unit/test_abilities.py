"""The ability vocabulary: normalising names and aliases, what a set of abilities grants and covers."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cloudlet.kit.errors import Invalid
from cloudlet.tokens.abilities import CYBERPANEL_SCOPES, GROUPS, Ability, covers, grants, normalize

SPECIFIC = [a for a in Ability if a is not Ability.ALL]
NAMES = [a.value for a in Ability] + [f"{g}:*" for g in GROUPS] + list(CYBERPANEL_SCOPES)
held_sets = st.lists(st.sampled_from(NAMES), max_size=6).map(normalize)


def test_cyberpanel_scopes_are_aliases() -> None:
    assert normalize(["all"]) == ["*"]
    assert normalize(["vps:read", "vps:delete", "billing:write"]) == [
        "instances:read", "instances:delete", "wallet:write"]
    assert normalize([" instances:read ", "vps:read", "waf:*"]) == ["instances:read", "waf:*"]


@pytest.mark.parametrize("name", ["", "instances", "instances:fly", "rockets:*", "*:*", "VPS:READ", "all:read"])
def test_unknown_abilities_are_refused_by_name(name: str) -> None:
    with pytest.raises(Invalid) as refused:
        normalize(["instances:read", name])
    assert refused.value.field == "abilities"
    assert refused.value.code == "INVALID_SCOPE"
    assert repr(name.strip()) in refused.value.message


def test_grants() -> None:
    assert grants(["*"], Ability.WALLET_READ)
    assert grants(["agent:*"], Ability.AGENT_WRITE)
    assert not grants(["agent:*"], Ability.SHIELD_READ)
    assert grants(["instances:write"], Ability.INSTANCES_DELETE)  # CyberPanel deletes with vps:write
    assert not grants(["instances:delete"], Ability.INSTANCES_WRITE)
    assert not grants(["instances:read"], Ability.INSTANCES_WRITE)
    assert not grants([], Ability.INSTANCES_READ)
    assert not grants(["waf:read"], Ability.ALL)
    assert not grants(["instances:*"], Ability.ALL)


def test_covers() -> None:
    assert covers(["*"], ["*"])
    assert covers(["instances:*"], ["instances:read", "instances:delete", "instances:*"])
    assert not covers(["instances:read", "instances:write", "instances:delete"], ["instances:*"])
    assert not covers(["instances:*"], ["*"])
    assert not covers(["waf:read"], ["waf:write"])
    assert covers(["waf:read"], [])


@given(st.lists(st.sampled_from(NAMES), max_size=8))
def test_normalize_is_idempotent_and_canonical(names: list[str]) -> None:
    once = normalize(names)
    assert normalize(once) == once
    assert len(set(once)) == len(once)
    assert all(n not in CYBERPANEL_SCOPES or n in {a.value for a in Ability} for n in once)


@given(held_sets)
def test_everything_covers_itself_and_star_covers_everything(held: list[str]) -> None:
    assert covers(held, held)
    assert covers(["*"], held)


@given(held_sets, held_sets)
def test_covering_never_grants_more(held: list[str], wanted: list[str]) -> None:
    """The rule that a token cannot mint a stronger one: whatever `wanted` grants, `held` grants too."""
    if covers(held, wanted):
        for ability in Ability:
            assert not grants(wanted, ability) or grants(held, ability), ability


@given(st.sampled_from(SPECIFIC), st.sampled_from(SPECIFIC))
def test_a_single_ability_grants_itself_and_only_its_implications(held: Ability, needed: Ability) -> None:
    expected = held == needed or (held, needed) == (Ability.INSTANCES_WRITE, Ability.INSTANCES_DELETE)
    assert grants([held.value], needed) is expected
