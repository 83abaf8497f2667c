"""A build asks the guest agent and the guest's SSH server where the image has them, and the serial line alone
where it has not; a guest whose agent or SSH never answers fails its build, which is undone and refunded."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from cloudlet.drivers.base import GuestFailed
from cloudlet.images.models import ImageCapability
from tests.cloud import Cloud, WrappedDriver, wait_for
from tests.integration.test_instances import order

AGENT_AND_SSH = frozenset({ImageCapability.CLOUD_INIT, ImageCapability.GUEST_AGENT, ImageCapability.SSH})


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    """A guest that does not answer fails within seconds, not minutes."""
    return {"instance_ready_timeout_seconds": 2.0}


def built(cloud: Cloud) -> tuple[dict[str, Any], dict[str, str]]:
    """Order a server and wait for its build to end; the server and what each task reported."""
    client = cloud.client()
    server = client.post("/api/instances", json=order(cloud)).json()

    def ended() -> dict[str, Any] | None:
        action: dict[str, Any] = client.get(f"/api/instances/{server['id']}/actions").json()[0]
        return action if action["status"] != "running" else None

    action = wait_for(ended)
    return {**server, "action": action}, {t["name"]: t["detail"] or "" for t in action["tasks"]}


def test_an_image_with_the_agent_and_ssh_is_checked_through_both(cloud: Cloud) -> None:
    cloud.image_can(*AGENT_AND_SSH)
    server, details = built(cloud)
    assert server["action"]["status"] == "success", details
    assert details["wait_for_guest_agent"].startswith("guest agent answered after ")
    assert f"SSH answers on {server['main_ip']}:22 (SSH-2.0-" in details["verify_connectivity"]


def test_an_image_without_them_is_checked_by_its_serial_line_alone(cloud: Cloud) -> None:
    server, details = built(cloud)
    assert server["action"]["status"] == "success", details
    assert details["wait_for_guest_agent"].startswith("hostname=web-1 ")
    assert "SSH" not in details["verify_connectivity"]


@pytest.mark.parametrize(("method", "replacement", "task", "reason"), [
    ("agent_ping", lambda _name: False, "wait_for_guest_agent", "the guest agent did not answer within 2 s"),
    ("ssh_banner", lambda _name, address, timeout: (_ for _ in ()).throw(
        GuestFailed(f"nothing answered on {address} port 22 within {timeout:g} s")),
     "verify_connectivity", "nothing answered on"),
])
def test_a_guest_whose_agent_or_ssh_never_answers_fails_its_build_and_is_refunded(
        cloud: Cloud, node_driver: Callable[[Any], None], method: str, replacement: Callable[..., Any], task: str,
        reason: str) -> None:
    cloud.image_can(*AGENT_AND_SSH)
    node_driver(WrappedDriver(cloud.driver, **{method: replacement}))
    before = cloud.balance()
    server, _details = built(cloud)
    assert server["action"]["status"] == "error"
    failed = [t for t in server["action"]["tasks"] if t["status"] == "failed"]
    assert [t["name"] for t in failed] == [task] and reason in failed[0]["detail"]
    assert cloud.balance() == before
    assert cloud.driver.list_guests() == []
