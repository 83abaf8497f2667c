"""Power actions (boot, shutdown, restart, poweroff) on every surface, carried out by the real worker (DBOS)
on a FakeDriver node: the transitional status, the status synced from the node, the action and its tasks,
and the refusals (409 busy or wrong state, 403 suspended, 404 another tenant's)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from cloudlet.drivers.base import GuestFailed, GuestReady, NodeUnreachable
from cloudlet.instances import repository
from cloudlet.instances.models import InstanceStatus
from cloudlet.instances.power import BOOT_TASKS, POWEROFF_TASKS, RESTART_TASKS, SHUTDOWN_TASKS
from tests.cloud import Cloud, HeldDriver, WrappedDriver, wait_for
from tests.helpers import make_user, mint_token
from tests.integration.test_instances import order

CP_KEYS = {"id", "vmid", "name", "status", "ip_address"}


# --- helpers -------------------------------------------------------------------------------------


def status_of(client: httpx.Client, instance_id: str) -> str:
    """The instance's status on the primary surface."""
    answer = client.get(f"/api/instances/{instance_id}")
    assert answer.status_code == 200, answer.text
    return str(answer.json()["status"])


def settles_at(client: httpx.Client, instance_id: str, wanted: str) -> dict[str, Any]:
    """Wait until the instance shows `wanted` and no action holds it; its detail."""
    def check() -> dict[str, Any] | None:
        found: dict[str, Any] = client.get(f"/api/instances/{instance_id}").json()
        return found if found["status"] == wanted and not found["locked"] else None
    result: dict[str, Any] = wait_for(check)
    return result


def running_server(cloud: Cloud, client: httpx.Client | None = None) -> dict[str, Any]:
    """A server of the customer's, built and running."""
    http = client or cloud.client()
    created = http.post("/api/instances", json=order(cloud))
    assert created.status_code == 201, created.text
    body: dict[str, Any] = created.json()
    settles_at(http, body["id"], "running")
    return body


def numeric_id(cloud: Cloud, uuid: str) -> int:
    """The instance's numeric id (CyberPanel's `id`)."""
    with cloud.runtime.db.session(write=False) as session:
        row = repository.instance(session, uuid)
        assert row is not None
        return row.id


def guest_of(cloud: Cloud, uuid: str) -> str:
    """The name the node knows the instance's guest by."""
    with cloud.runtime.db.session(write=False) as session:
        row = repository.instance(session, uuid)
        assert row is not None
        return row.guest_name


def actions_of(client: httpx.Client, instance_id: str) -> list[dict[str, Any]]:
    """The instance's actions, newest first."""
    answer = client.get(f"/api/instances/{instance_id}/actions")
    assert answer.status_code == 200, answer.text
    found: list[dict[str, Any]] = answer.json()
    return found


def cp(cloud: Cloud, person: Any = None) -> httpx.Client:
    """A CyberPanel client: a key with vps:read and vps:write."""
    return cloud.api.as_(mint_token(cloud.runtime, person or cloud.customer, "vps:read", "vps:write"))


def wc(cloud: Cloud, person: Any = None) -> httpx.Client:
    """A WaysCloud client: the token in X-API-Key."""
    return cloud.api.as_((person or cloud.customer).token, header="x-api-key")


# --- the primary surface -------------------------------------------------------------------------


def test_each_power_action_moves_through_its_transitional_status_and_syncs_from_the_node(cloud: Cloud) -> None:
    client = cloud.client()
    server = running_server(cloud)
    uid = server["id"]
    name = guest_of(cloud, uid)
    boots = cloud.driver._guests[name].boots

    for action, transitional, final, boots_after in (("shutdown", "stopping", "stopped", 0),
                                                     ("boot", "starting", "running", 1),
                                                     ("restart", "restarting", "running", 2),
                                                     ("poweroff", "stopping", "stopped", 2)):
        answer = client.post(f"/api/instances/{uid}/power/{action}")
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["id"] == uid and body["status"] == transitional
        assert body["locked"] is True and body["allowed_actions"] == []
        assert body["action"]["command"] == action and body["action"]["status"] == "running"
        detail = settles_at(client, uid, final)
        assert detail["vf_remote_state"]["state"] == final  # what the node says, too
        assert cloud.driver.state(name).value == final
        assert cloud.driver._guests[name].boots == boots + boots_after
        assert detail["status_reason"] == ""
    assert "boot" in detail["allowed_actions"] and "shutdown" not in detail["allowed_actions"]

    done = actions_of(client, uid)
    assert [a["command"] for a in done] == ["poweroff", "restart", "boot", "shutdown", "create"]
    assert all(a["status"] == "success" and a["progress"] == 100 and a["error"] is None for a in done)
    tasks = {a["command"]: [(t["name"], t["status"]) for t in a["tasks"]] for a in done}
    for command, names in (("boot", BOOT_TASKS), ("shutdown", SHUTDOWN_TASKS), ("restart", RESTART_TASKS),
                           ("poweroff", POWEROFF_TASKS)):
        assert tasks[command] == [(n, "completed") for n in names]
    details = {a["command"]: {t["name"]: t["detail"] for t in a["tasks"]} for a in done}
    assert details["shutdown"]["shut_down_guest"].startswith(f"guest {name} shut down in ")
    assert details["boot"]["wait_for_boot"] == f"guest {name} is up: hostname=web-1 address={server['main_ip']}"
    assert details["restart"]["sync_status"] == "the node says the guest is running: status running"
    assert details["poweroff"]["sync_status"] == "the node says the guest is stopped: status stopped"


def test_an_unknown_power_action_is_422(cloud: Cloud) -> None:
    server = running_server(cloud)
    answer = cloud.client().post(f"/api/instances/{server['id']}/power/hibernate")
    assert answer.status_code == 422 and "action" in answer.json()["errors"]
    assert [a["command"] for a in actions_of(cloud.client(), server["id"])] == ["create"]


def test_while_an_action_runs_the_status_is_transitional_and_every_surface_answers_409(
        cloud: Cloud, node_driver: Callable[[Any], None]) -> None:
    client = cloud.client()
    server = running_server(cloud)
    uid, vps = server["id"], numeric_id(cloud, server["id"])
    held = HeldDriver(cloud.driver, "wait_ready")
    node_driver(held)

    assert client.post(f"/api/instances/{uid}/power/restart").json()["status"] == "restarting"
    assert held.waiting.wait(30)  # the guest was asked to restart; the action waits for it to be back
    shown = client.get(f"/api/instances/{uid}").json()
    assert shown["status"] == "restarting" and shown["locked"] is True and shown["allowed_actions"] == []
    action = actions_of(client, uid)[0]
    assert action["command"] == "restart" and action["current_task"] == "wait_for_boot"
    assert [t["status"] for t in action["tasks"]] == ["completed", "in_progress", "pending"]
    assert cp(cloud).get(f"/api/v1/vps/{vps}").json()["data"]["status"] == "restarting"
    assert cloud.client().get(f"/v1/instances/{uid}").json()["status"] == "restarting"
    assert wc(cloud).get(f"/v1/vps/{uid}").json()["status"] == "starting"  # WaysCloud's word for it

    busy = [client.post(f"/api/instances/{uid}/power/poweroff"),
            cp(cloud).post(f"/api/v1/vps/{vps}/stop"),
            wc(cloud).post(f"/v1/vps/{uid}/stop"),
            cloud.client().post(f"/v1/instances/{uid}/kill")]
    assert [b.status_code for b in busy] == [409, 409, 409, 409], [b.text for b in busy]
    assert busy[0].json()["code"] == "INSTANCE_BUSY"
    assert busy[1].json()["success"] is False and busy[1].json()["error_code"] == "INSTANCE_BUSY"
    assert busy[2].json()["code"] == "INSTANCE_BUSY"
    assert "in progress" in busy[3].json()["error"]

    held.gate.set()
    settles_at(client, uid, "running")
    assert [a["command"] for a in actions_of(client, uid)] == ["restart", "create"]


def test_a_state_that_does_not_allow_the_command_is_409_on_every_surface(cloud: Cloud) -> None:
    client = cloud.client()
    server = running_server(cloud)
    uid, vps = server["id"], numeric_id(cloud, server["id"])
    running = [client.post(f"/api/instances/{uid}/power/boot"), cp(cloud).post(f"/api/v1/vps/{vps}/start"),
               wc(cloud).post(f"/v1/vps/{uid}/start"), cloud.client().post(f"/v1/instances/{uid}/start")]
    assert [r.status_code for r in running] == [409, 409, 409, 409], [r.text for r in running]
    assert running[0].json()["code"] == "INVALID_STATE" and "running" in running[0].json()["message"]
    assert running[1].json()["error_code"] == "INVALID_STATE" and running[2].json()["code"] == "INVALID_STATE"

    client.post(f"/api/instances/{uid}/power/shutdown")
    settles_at(client, uid, "stopped")
    stopped = [client.post(f"/api/instances/{uid}/power/{a}") for a in ("shutdown", "restart", "poweroff")]
    stopped += [cp(cloud).post(f"/api/v1/vps/{vps}/stop"), cp(cloud).post(f"/api/v1/vps/{vps}/restart"),
                wc(cloud).post(f"/v1/vps/{uid}/reboot"), cloud.client().post(f"/v1/instances/{uid}/kill")]
    assert {r.status_code for r in stopped} == {409}, [r.text for r in stopped]
    assert [a["command"] for a in actions_of(client, uid)] == ["shutdown", "create"]


def test_a_suspended_server_is_403_on_every_surface(cloud: Cloud) -> None:
    client = cloud.client()
    server = running_server(cloud)
    uid, vps = server["id"], numeric_id(cloud, server["id"])
    with cloud.runtime.db.session() as session:  # what the billing engine's suspension leaves
        row = repository.instance(session, uid, lock=True)
        assert row is not None
        row.status = InstanceStatus.SUSPENDED
    refused = [client.post(f"/api/instances/{uid}/power/boot"), client.post(f"/api/instances/{uid}/power/restart"),
               cp(cloud).post(f"/api/v1/vps/{vps}/start"), wc(cloud).post(f"/v1/vps/{uid}/reboot"),
               cloud.client().post(f"/v1/instances/{uid}/kill")]
    assert [r.status_code for r in refused] == [403] * 5, [r.text for r in refused]
    assert refused[0].json()["code"] == "VPS_SUSPENDED" and "reactivate" in refused[0].json()["message"]
    assert refused[2].json()["error_code"] == "VPS_SUSPENDED" and refused[3].json()["code"] == "VPS_SUSPENDED"
    assert [a["command"] for a in actions_of(client, uid)] == ["create"]


def test_another_tenants_server_is_404_on_every_surface(cloud: Cloud) -> None:
    server = running_server(cloud)
    uid, vps = server["id"], numeric_id(cloud, server["id"])
    other = make_user(cloud.runtime, "other@example.com")
    answers = [cloud.client(other).post(f"/api/instances/{uid}/power/shutdown"),
               cloud.client(other).post(f"/api/instances/{vps}/power/poweroff"),
               cp(cloud, other).post(f"/api/v1/vps/{vps}/stop"), wc(cloud, other).post(f"/v1/vps/{uid}/stop"),
               cloud.client(other).post(f"/v1/instances/{uid}/kill"),
               cloud.client(other).post("/v1/instances/99999999999/kill"),
               cloud.client().post("/api/instances/99999999999/power/boot")]
    assert [a.status_code for a in answers] == [404] * 7, [a.text for a in answers]
    assert answers[2].json()["error_code"] == "VPS_NOT_FOUND"
    assert status_of(cloud.client(), uid) == "running"
    assert [a["command"] for a in actions_of(cloud.client(), uid)] == ["create"]


def test_a_power_action_needs_the_write_ability(cloud: Cloud) -> None:
    server = running_server(cloud)
    reader = cloud.api.as_(mint_token(cloud.runtime, cloud.customer, "instances:read"))
    assert reader.post(f"/api/instances/{server['id']}/power/shutdown").status_code == 403
    assert status_of(cloud.client(), server["id"]) == "running"


# --- CyberPanel ----------------------------------------------------------------------------------


def test_cyberpanel_answers_with_the_final_status_once_the_action_ends(cloud: Cloud) -> None:
    server = running_server(cloud)
    vps = numeric_id(cloud, server["id"])
    client = cp(cloud)
    for path, status, message in (("stop", "stopped", "VPS stopped successfully"),
                                  ("start", "running", "VPS started successfully"),
                                  ("restart", "running", "VPS restarted successfully")):
        answer = client.post(f"/api/v1/vps/{vps}/{path}")
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["success"] is True and body["message"] == message
        assert set(body["data"]) == CP_KEYS
        assert body["data"] == {"id": vps, "vmid": 100 + vps, "name": "web-1", "status": status,
                                "ip_address": server["main_ip"]}
        assert cloud.driver.state(guest_of(cloud, server["id"])).value == status
    commands = [a["command"] for a in actions_of(cloud.client(), server["id"])]
    assert commands == ["restart", "boot", "shutdown", "create"]


def test_cyberpanel_answers_the_transitional_status_when_the_wait_ends_first(
        cloud: Cloud, node_driver: Callable[[Any], None], monkeypatch: pytest.MonkeyPatch) -> None:
    server = running_server(cloud)
    vps = numeric_id(cloud, server["id"])
    held = HeldDriver(cloud.driver, "shutdown")
    node_driver(held)
    monkeypatch.setattr(cloud.runtime.settings, "instance_power_wait_seconds", 0.5)
    began = time.monotonic()
    answer = cp(cloud).post(f"/api/v1/vps/{vps}/stop")
    assert answer.status_code == 200, answer.text
    assert time.monotonic() - began >= 0.5
    assert answer.json()["message"] == "VPS is stopping" and answer.json()["data"]["status"] == "stopping"
    assert held.waiting.wait(30)  # the shutdown is under way, held until the gate opens
    held.gate.set()
    settles_at(cloud.client(), server["id"], "stopped")


def test_cyberpanel_reports_a_failed_start_with_its_error_code(
        cloud: Cloud, node_driver: Callable[[Any], None]) -> None:
    client = cloud.client()
    server = running_server(cloud)
    uid, vps = server["id"], numeric_id(cloud, server["id"])
    client.post(f"/api/instances/{uid}/power/poweroff")
    settles_at(client, uid, "stopped")

    def never_ready(name: str, timeout: float) -> GuestReady:
        raise GuestFailed(f"guest {name} was not ready within {timeout:.0f}s; console:\nKernel panic")

    node_driver(WrappedDriver(cloud.driver, wait_ready=never_ready))
    answer = cp(cloud).post(f"/api/v1/vps/{vps}/start")
    assert answer.status_code == 500, answer.text
    body = answer.json()
    assert body["success"] is False and body["error_code"] == "START_FAILED"
    assert body["message"].startswith("Failed to start VPS: guest ") and "Kernel panic" in body["message"]
    # the guest is on (it was started) but never said it was up: the status says what the node says
    detail = settles_at(client, uid, "running")
    assert detail["status_reason"].startswith("boot failed: guest ")
    boot = actions_of(client, uid)[0]
    assert boot["command"] == "boot" and boot["status"] == "error" and "Kernel panic" in boot["error"]
    assert [(t["name"], t["status"]) for t in boot["tasks"]] == [
        ("boot_guest", "completed"), ("wait_for_boot", "failed"), ("sync_status", "completed")]


# --- WaysCloud and Shardlyn ----------------------------------------------------------------------


def test_wayscloud_start_stop_and_reboot(cloud: Cloud) -> None:
    server = running_server(cloud)
    uid = server["id"]
    name = guest_of(cloud, uid)
    client = wc(cloud)
    for path, message, final in (("stop", "VPS is stopping", "stopped"), ("start", "VPS is starting", "running"),
                                 ("reboot", "VPS is rebooting", "running")):
        boots = cloud.driver._guests[name].boots
        answer = client.post(f"/v1/vps/{uid}/{path}")
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"success": True, "action": path, "message": message}
        settles_at(cloud.client(), uid, final)
        assert client.get(f"/v1/vps/{uid}").json()["status"] == final
        assert cloud.driver._guests[name].boots == boots + (path != "stop")
    commands = [a["command"] for a in actions_of(cloud.client(), uid)]
    assert commands == ["restart", "boot", "shutdown", "create"]


def test_shardlyn_start_stop_restart_and_kill(cloud: Cloud) -> None:
    server = running_server(cloud)
    uid = server["id"]
    client = cloud.client()
    for path, transitional, final in (("stop", "stopping", "stopped"), ("start", "starting", "running"),
                                      ("restart", "restarting", "running"), ("kill", "stopping", "stopped")):
        answer = client.post(f"/v1/instances/{uid}/{path}")
        assert answer.status_code == 202, answer.text
        body = answer.json()
        assert body["id"] == uid and body["status"] == transitional and body["locked"] is True
        assert body["action_id"] == str(actions_of(client, uid)[0]["id"])
        settles_at(client, uid, final)
        assert client.get(f"/v1/instances/{uid}").json()["status"] == final
    commands = [a["command"] for a in actions_of(client, uid)]
    assert commands == ["poweroff", "restart", "boot", "shutdown", "create"]


# --- the shutdown's fallback and the sync from the node -------------------------------------------


def test_a_shutdown_the_guest_ignores_ends_in_a_power_off_after_the_configured_timeout(
        cloud: Cloud, node_driver: Callable[[Any], None], monkeypatch: pytest.MonkeyPatch) -> None:
    server = running_server(cloud)
    uid = server["id"]
    name = guest_of(cloud, uid)
    asked: list[float] = []

    def deaf_guest(guest: str, timeout: float = 60.0) -> None:
        # the guest ignores the ACPI request: the driver waits out the timeout, then cuts the power
        asked.append(timeout)
        time.sleep(timeout)
        cloud.driver.poweroff(guest)

    node_driver(WrappedDriver(cloud.driver, shutdown=deaf_guest))
    monkeypatch.setattr(cloud.runtime.settings, "instance_shutdown_timeout_seconds", 0.4)
    cloud.client().post(f"/api/instances/{uid}/power/shutdown")
    settles_at(cloud.client(), uid, "stopped")
    assert asked == [0.4]
    shutdown = actions_of(cloud.client(), uid)[0]
    assert shutdown["status"] == "success"
    assert shutdown["tasks"][0]["detail"] == f"guest {name} did not shut down within 0.4 s; its power was cut"


def test_the_status_follows_the_node_when_the_guest_does_not_stay_up(
        cloud: Cloud, node_driver: Callable[[Any], None]) -> None:
    server = running_server(cloud)
    uid = server["id"]

    def reboot_then_die(name: str) -> None:
        cloud.driver.reboot(name)
        cloud.driver.poweroff(name)  # the guest powered itself off right after its restart

    def stale_ready(name: str, timeout: float) -> GuestReady:
        return GuestReady("i", "web-1", None, 0, True)

    node_driver(WrappedDriver(cloud.driver, reboot=reboot_then_die, wait_ready=stale_ready))
    cloud.client().post(f"/api/instances/{uid}/power/restart")
    detail = settles_at(cloud.client(), uid, "stopped")
    assert detail["status_reason"] == "restart failed: the node says the guest is stopped, not running"
    restart = actions_of(cloud.client(), uid)[0]
    assert restart["status"] == "error" and restart["tasks"][-1]["status"] == "failed"


def test_a_node_that_does_not_answer_at_the_end_leaves_the_status_unknown(
        cloud: Cloud, node_driver: Callable[[Any], None]) -> None:
    server = running_server(cloud)
    uid = server["id"]

    def unreachable(name: str) -> Any:
        raise NodeUnreachable("qemu+ssh://hv1.example.net/system: connection refused")

    node_driver(WrappedDriver(cloud.driver, state=unreachable))
    cloud.client().post(f"/api/instances/{uid}/power/poweroff")
    detail = settles_at(cloud.client(), uid, "unknown")
    assert detail["status_reason"].startswith("poweroff failed: the node did not answer: ")
    assert detail["allowed_actions"] == ["delete"]
    poweroff = actions_of(cloud.client(), uid)[0]
    assert poweroff["status"] == "error" and poweroff["tasks"][0]["status"] == "completed"
