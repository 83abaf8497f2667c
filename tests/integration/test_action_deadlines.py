"""Every task has a deadline: a driver call that never returns fails the action at the deadline through its
procedure's clean-up, and the server is free again; an action's conclusion is retried until it is recorded.

Deadlines are scaled down here (action_deadline_scale) so a held driver call outlives its task's deadline in
seconds; the worker is the real one (DBOS) and the node a FakeDriver whose named calls the test holds.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import httpx
import pytest

from cloudlet.actions import registry, runner
from cloudlet.instances.work import Work
from tests.cloud import Cloud, HeldDriver, wait_for
from tests.integration.test_instances import order, running

SCALE = 0.05  # boot_guest and start_vm (120 s) get 6 s


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    """Short deadlines, and clean-up calls that give up quickly."""
    return {"action_deadline_scale": SCALE, "action_cleanup_call_seconds": 5.0}


def ended_action(client: httpx.Client, instance_id: str, action_id: int) -> dict[str, Any]:
    """Wait until the action has ended; the action as the primary surface shows it."""
    def check() -> dict[str, Any] | None:
        found = client.get(f"/api/instances/{instance_id}/actions/{action_id}")
        assert found.status_code == 200, found.text
        body: dict[str, Any] = found.json()
        return body if body["status"] != "running" else None
    result: dict[str, Any] = wait_for(check, timeout=60)
    return result


def test_a_boot_whose_driver_call_never_returns_fails_at_its_deadline_and_frees_the_server(
        cloud: Cloud, node_driver: Callable[[Any], None]) -> None:
    client = cloud.client()
    server = client.post("/api/instances", json=order(cloud)).json()
    running(client, server["id"])
    off = client.post(f"/api/instances/{server['id']}/power/poweroff")
    assert off.status_code == 200, off.text
    ended_action(client, server["id"], off.json()["action"]["id"])
    held = HeldDriver(cloud.driver, "start")
    node_driver(held)

    began = time.monotonic()
    boot = client.post(f"/api/instances/{server['id']}/power/boot")
    assert boot.status_code == 200, boot.text
    assert held.waiting.wait(15)
    while_held = client.get(f"/api/instances/{server['id']}").json()
    assert while_held["locked"] is True and while_held["allowed_actions"] == []
    action = ended_action(client, server["id"], boot.json()["action"]["id"])
    took = time.monotonic() - began

    assert action["status"] == "error"
    assert action["error"] == "deadline: task boot_guest did not finish within 6 s"
    assert took >= 6 * 0.9, took  # not before the deadline ...
    assert not held.gate.is_set()  # ... and without the held call ever returning
    failed = {task["name"]: task["status"] for task in action["tasks"]}
    assert failed["boot_guest"] == "failed"
    detail = client.get(f"/api/instances/{server['id']}").json()
    assert detail["status"] == "stopped" and detail["locked"] is False  # what the node says, and free again
    assert "boot" in detail["allowed_actions"]

    node_driver(cloud.driver)  # the node answers again: a new action is accepted and carried out
    again = client.post(f"/api/instances/{server['id']}/power/boot")
    assert again.status_code == 200, again.text
    assert ended_action(client, server["id"], again.json()["action"]["id"])["status"] == "success"
    assert client.get(f"/api/instances/{server['id']}").json()["status"] == "running"


def test_a_build_past_its_deadline_removes_the_guest_frees_the_address_and_refunds(
        cloud: Cloud, node_driver: Callable[[Any], None]) -> None:
    client = cloud.client()
    before = cloud.balance()
    held = HeldDriver(cloud.driver, "start")
    node_driver(held)
    created = client.post("/api/instances", json=order(cloud))
    assert created.status_code == 201, created.text
    server = created.json()
    assert cloud.balance() < before
    assert held.waiting.wait(30)
    (build,) = client.get(f"/api/instances/{server['id']}/actions").json()
    action = ended_action(client, server["id"], build["id"])

    assert action["status"] == "error"
    assert action["error"].startswith("deadline: task start_vm did not finish within 6 s")
    detail = client.get(f"/api/instances/{server['id']}").json()
    assert detail["status"] == "error" and detail["locked"] is False and detail["allowed_actions"] == ["delete"]
    assert detail["main_ip"] is None and detail["ip_addresses"] == []  # the address is free again
    assert cloud.driver.list_guests() == []  # the guest the build had defined is gone from the node
    assert cloud.balance() == before  # refunded in full
    deleted = client.request("DELETE", f"/api/instances/{server['id']}", json={"mode": "immediate"})
    assert deleted.status_code in (200, 202), deleted.text


def test_a_conclusion_that_fails_is_retried_until_it_is_recorded(cloud: Cloud,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    client = cloud.client()
    server = client.post("/api/instances", json=order(cloud)).json()
    running(client, server["id"])
    real = registry.procedure_of("poweroff")
    tries: list[float] = []

    def flaky(work: Work, task: str | None, reason: str | None) -> None:
        tries.append(time.monotonic())
        if len(tries) <= 6:  # more than the four attempts a conclusion used to get
            raise RuntimeError("the database did not answer")
        real.conclude(work, task, reason)

    monkeypatch.setitem(registry.PROCEDURES, "poweroff", replace(real, conclude=flaky))
    monkeypatch.setattr(runner, "CONCLUDE_RETRY_FIRST_SECONDS", 0.05)
    off = client.post(f"/api/instances/{server['id']}/power/poweroff")
    assert off.status_code == 200, off.text
    wait_for(lambda: len(tries) >= 3)
    assert client.get(f"/api/instances/{server['id']}").json()["locked"] is True  # not ended while unrecorded
    action = ended_action(client, server["id"], off.json()["action"]["id"])

    assert action["status"] == "success" and len(tries) == 7
    pauses = [later - earlier for earlier, later in itertools.pairwise(tries)]
    assert pauses[-1] > pauses[0]  # the pause grows between tries
    detail = client.get(f"/api/instances/{server['id']}").json()
    assert detail["status"] == "stopped" and detail["locked"] is False
