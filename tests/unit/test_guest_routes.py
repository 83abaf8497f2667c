"""A guest's host route goes with the guest, and a route someone else removed first is no failure (two control
planes on one bridge may hand out the same address; a restart clears routes)."""

from __future__ import annotations

import pytest

from cloudlet.drivers.base import GuestFailed
from cloudlet.drivers.libvirt import host


def fake_ip(monkeypatch: pytest.MonkeyPatch, *, shown: str, deleting: str | None) -> list[tuple[str, ...]]:
    """Have `ip` show `shown` for the route and fail its deletion with `deleting` (None: succeed)."""
    calls: list[tuple[str, ...]] = []

    def run(*args: str) -> str:
        calls.append(args)
        if "del" in args and deleting is not None:
            raise GuestFailed(f"ip {' '.join(args)} failed: {deleting}")
        return shown if "show" in args else ""

    monkeypatch.setattr(host, "_ip", run)
    return calls


def test_a_route_gone_between_the_look_and_the_deletion_is_fine(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = fake_ip(monkeypatch, shown="203.0.113.2 dev cloudlet0 proto static scope link",
                    deleting="RTNETLINK answers: No such process")
    host.unroute_guest("203.0.113.2")
    assert [call[2] for call in calls] == ["show", "del"]


def test_a_route_already_gone_is_not_deleted(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = fake_ip(monkeypatch, shown="", deleting=None)
    host.unroute_guest("203.0.113.2")
    assert [call[2] for call in calls] == ["show"]


def test_any_other_refusal_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_ip(monkeypatch, shown="203.0.113.2 dev cloudlet0", deleting="RTNETLINK answers: Operation not permitted")
    with pytest.raises(GuestFailed, match="not permitted"):
        host.unroute_guest("203.0.113.2")
