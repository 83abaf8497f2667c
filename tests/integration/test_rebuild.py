"""Reinstall, upgrade and password reset on the primary surface, carried out by the real worker (DBOS) on a
FakeDriver node: what the guest gets, what billing and the node's capacity record, and the refusals (402, 422,
409 busy, 403 suspended, 404 another tenant's)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from cloudlet.billing import service as billing
from cloudlet.billing.models import EntryKind
from cloudlet.catalog import service as catalog
from cloudlet.drivers.base import GuestState
from cloudlet.images.models import ImageCapability
from cloudlet.instances import repository
from cloudlet.instances.models import InstanceStatus
from cloudlet.instances.rebuild import REINSTALL_TASKS, RESET_PASSWORD_TASKS, UPGRADE_TASKS
from cloudlet.instances.service import unseal
from cloudlet.nodes import service as nodes
from cloudlet.nodes.schemas import Resources
from cloudlet.nodes.service import NoCapacity
from tests.cloud import Cloud, HeldDriver
from tests.helpers import make_user, mint_token
from tests.integration.test_power import actions_of, guest_of, running_server, settles_at

GIB = 1024**3


def plan_id(cloud: Cloud, code: str) -> int:
    """A default catalogue plan's id."""
    with cloud.runtime.db.session(write=False) as session:
        return catalog.get_plan(session, code).id


def sealed_password(cloud: Cloud, uid: str) -> str:
    """The root password the database keeps for the instance, opened."""
    with cloud.runtime.db.session(write=False) as session:
        row = repository.instance(session, uid)
        assert row is not None and row.root_password is not None
        return unseal(cloud.runtime.settings, row.root_password)


def node_used(cloud: Cloud) -> Resources:
    """What the node's reservations hold."""
    with cloud.runtime.db.session(write=False) as session:
        return nodes.get_node(session, cloud.node_id).used


def last_action(cloud: Cloud, uid: str) -> dict[str, Any]:
    """The instance's newest action."""
    return actions_of(cloud.client(), uid)[0]


# --- reinstall -----------------------------------------------------------------------------------


def test_reinstall_options_are_the_template_groups_of_the_plan(cloud: Cloud) -> None:
    server = running_server(cloud)
    answer = cloud.client().get(f"/api/instances/{server['id']}/reinstall-options")
    assert answer.status_code == 200, answer.text
    catalogue = cloud.client().get(f"/api/catalog/os-templates/{cloud.plan_id}").json()
    assert answer.json() == catalogue
    assert cloud.template_id in [t["id"] for group in answer.json() for t in group["templates"]]


def test_a_reinstall_rebuilds_the_disk_with_the_same_address_keys_and_password(cloud: Cloud) -> None:
    client = cloud.client()
    server = running_server(cloud)
    uid, name = server["id"], guest_of(cloud, server["id"])
    password = sealed_password(cloud, uid)
    client.post(f"/api/instances/{uid}/power/restart")
    settles_at(client, uid, "running")
    assert cloud.driver.stats(name).cpu_time_ns == 2_000_000_000  # booted twice on this disk

    answer = client.post(f"/api/instances/{uid}/reinstall",
                         json={"os_template_id": cloud.template_id, "os_name": "Debian 12 (fresh)"})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["status"] == "provisioning" and body["locked"] is True
    assert body["action"]["command"] == "reinstall"
    assert [t["name"] for t in body["action"]["tasks"]] == list(REINSTALL_TASKS)

    shown = settles_at(client, uid, "running")
    assert shown["os_name"] == "Debian 12 (fresh)" and shown["main_ip"] == server["main_ip"]
    action = last_action(cloud, uid)
    assert action["status"] == "success" and {t["status"] for t in action["tasks"]} == {"completed"}
    ready = cloud.driver.wait_ready(name, 1)
    assert ready.instance_id == f"{uid}-a{action['id']}"  # a new NoCloud instance: cloud-init applies it again
    assert (ready.hostname, ready.address) == ("web-1", server["main_ip"])
    assert ready.authorized_keys == 0 and ready.root_password_set is True
    assert sealed_password(cloud, uid) == password
    assert cloud.driver.stats(name).cpu_time_ns == 1_000_000_000  # a fresh disk, booted once


def test_a_stopped_server_is_reinstalled_and_runs(cloud: Cloud) -> None:
    client = cloud.client()
    uid = running_server(cloud)["id"]
    client.post(f"/api/instances/{uid}/power/shutdown")
    settles_at(client, uid, "stopped")
    answer = client.post(f"/api/instances/{uid}/reinstall", json={"os_template_id": cloud.template_id,
                                                                  "os_name": ""})
    assert answer.status_code == 200, answer.text
    assert settles_at(client, uid, "running")["os_name"] == "Debian 12 (tiny)"  # the template's name


def test_a_reinstall_with_an_unknown_template_is_422_and_changes_nothing(cloud: Cloud) -> None:
    client = cloud.client()
    uid = running_server(cloud)["id"]
    answer = client.post(f"/api/instances/{uid}/reinstall", json={"os_template_id": 987654, "os_name": "x"})
    assert answer.status_code == 422, answer.text
    assert answer.json()["code"] == "INVALID_TEMPLATE"
    assert client.get(f"/api/instances/{uid}").json()["status"] == "running"
    assert [a["command"] for a in actions_of(client, uid)] == ["create"]


def test_a_reinstall_that_fails_shows_error(cloud: Cloud, node_driver: Callable[[Any], None]) -> None:
    from tests.cloud import WrappedDriver

    client = cloud.client()
    uid = running_server(cloud)["id"]

    def no_image(spec: Any) -> None:
        from cloudlet.drivers.base import ImageNotFound
        raise ImageNotFound(spec.image)

    node_driver(WrappedDriver(cloud.driver, define_guest=no_image))
    client.post(f"/api/instances/{uid}/reinstall", json={"os_template_id": cloud.template_id, "os_name": ""})
    shown = settles_at(client, uid, "error")
    assert "reinstall failed" in shown["status_reason"] and "no image named" in shown["status_reason"]
    action = last_action(cloud, uid)
    assert action["status"] == "error"
    assert [t["status"] for t in action["tasks"]][:3] == ["completed", "failed", "pending"]


# --- upgrade -------------------------------------------------------------------------------------


def test_an_upgrade_charges_the_difference_grows_the_disk_now_and_the_rest_at_the_next_boot(cloud: Cloud) -> None:
    client = cloud.client()
    uid = running_server(cloud)["id"]
    name = guest_of(cloud, uid)
    before, used = cloud.balance(), node_used(cloud)

    answer = client.post(f"/api/instances/{uid}/upgrade", json={"package_id": plan_id(cloud, "scout-2"),
                                                                "reboot": False})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["charged_cents"] > 0 and cloud.balance() == before - body["charged_cents"]
    assert body["applied"] == "next_boot" and "next boot" in body["message"]
    assert body["action"]["command"] == "upgrade"
    assert [t["name"] for t in body["action"]["tasks"]] == list(UPGRADE_TASKS)

    shown = settles_at(client, uid, "running")
    assert (shown["vcpu"], shown["ram"], shown["storage"]) == (2, 4, 60)
    assert node_used(cloud) == Resources(vcpu=used.vcpu + 1, memory_mib=used.memory_mib + 3072,
                                         disk_gib=used.disk_gib + 35)
    assert cloud.driver.stats(name).disk_capacity_bytes == 60 * GIB  # the guest sees the bigger disk now
    hardware = cloud.driver.hardware(name)
    assert (hardware.vcpus, hardware.memory_mib) == (1, 1024)  # the running machine keeps its size
    assert last_action(cloud, uid)["status"] == "success"

    client.post(f"/api/instances/{uid}/power/restart")
    settles_at(client, uid, "running")
    hardware = cloud.driver.hardware(name)
    assert (hardware.state, hardware.vcpus, hardware.memory_mib) == (GuestState.RUNNING, 2, 4096)


def test_an_upgrade_with_reboot_applies_at_once(cloud: Cloud) -> None:
    client = cloud.client()
    uid = running_server(cloud)["id"]
    name = guest_of(cloud, uid)
    answer = client.post(f"/api/instances/{uid}/upgrade", json={"package_id": plan_id(cloud, "scout-4"),
                                                                "reboot": True})
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "restarting" and answer.json()["applied"] == "now"
    shown = settles_at(client, uid, "running")
    assert (shown["vcpu"], shown["ram"], shown["storage"], shown["plan"]) == (4, 8, 120, "scout-4")
    hardware = cloud.driver.hardware(name)
    assert (hardware.vcpus, hardware.memory_mib) == (4, 8192)
    assert cloud.driver.stats(name).disk_capacity_bytes == 120 * GIB
    tasks = last_action(cloud, uid)["tasks"]
    assert "restarted with 4 vCPU and 8192 MiB" in tasks[1]["detail"]

    again = client.post(f"/api/instances/{uid}/upgrade", json={"package_id": plan_id(cloud, "scout-4"),
                                                               "reboot": False})
    assert again.status_code == 200 and again.json()["charged_cents"] == 0  # the plan held: re-applied, free
    settles_at(client, uid, "running")


def test_an_upgrade_the_wallet_cannot_pay_is_402_and_changes_nothing(cloud: Cloud) -> None:
    client = cloud.client()
    uid = running_server(cloud)["id"]
    left = cloud.balance()
    with cloud.runtime.db.session() as session:
        wallet = billing.wallet_of(session, cloud.runtime.settings, cloud.customer.project_id)
        billing.debit(session, wallet.id, left, kind=EntryKind.ADMIN_DEBIT, key="spend-all")
    used = node_used(cloud)
    answer = client.post(f"/api/instances/{uid}/upgrade", json={"package_id": plan_id(cloud, "scout-2"),
                                                                "reboot": True})
    assert answer.status_code == 402, answer.text
    shown = client.get(f"/api/instances/{uid}").json()
    assert (shown["status"], shown["plan"], shown["vcpu"]) == ("running", "scout-1", 1)
    assert node_used(cloud) == used and cloud.balance() == 0
    assert [a["command"] for a in actions_of(client, uid)] == ["create"]


def test_a_smaller_disk_or_an_unknown_plan_is_422(cloud: Cloud) -> None:
    client = cloud.client()
    uid = running_server(cloud)["id"]
    client.post(f"/api/instances/{uid}/upgrade", json={"package_id": plan_id(cloud, "scout-2"), "reboot": False})
    settles_at(client, uid, "running")
    before = cloud.balance()
    smaller = client.post(f"/api/instances/{uid}/upgrade", json={"package_id": plan_id(cloud, "forge-2"),
                                                                 "reboot": False})
    assert smaller.status_code == 422, smaller.text
    assert smaller.json()["code"] == "DISK_TOO_SMALL"
    assert "50 GiB disk, smaller than the instance's 60 GiB" in smaller.json()["message"]
    unknown = client.post(f"/api/instances/{uid}/upgrade", json={"package_id": 987654, "reboot": False})
    assert unknown.status_code == 422 and unknown.json()["code"] == "PLAN_NOT_FOUND"
    assert cloud.balance() == before
    assert client.get(f"/api/instances/{uid}").json()["plan"] == "scout-2"


def test_an_upgrade_needs_a_billing_right_and_the_write_ability(cloud: Cloud) -> None:
    uid = running_server(cloud)["id"]
    reader = cloud.api.as_(mint_token(cloud.runtime, cloud.customer, "instances:read"))
    body = {"package_id": plan_id(cloud, "scout-2"), "reboot": False}
    assert reader.post(f"/api/instances/{uid}/upgrade", json=body).status_code == 403
    assert reader.post(f"/api/instances/{uid}/reset-password").status_code == 403
    assert reader.get(f"/api/instances/{uid}/reinstall-options").status_code == 200
    stranger = make_user(cloud.runtime, "stranger@example.com")
    assert cloud.client(stranger).post(f"/api/instances/{uid}/upgrade", json=body).status_code == 404
    assert cloud.client(stranger).post(f"/api/instances/{uid}/reset-password").status_code == 404
    assert cloud.client(stranger).get(f"/api/instances/{uid}/reinstall-options").status_code == 404


def test_the_node_reservation_grows_only_with_room_on_its_node(cloud: Cloud) -> None:
    uid = running_server(cloud)["id"]
    with cloud.runtime.db.session(write=False) as session:
        row = repository.instance(session, uid)
        assert row is not None and row.reservation_id is not None
        reservation_id = row.reservation_id
    used = node_used(cloud)
    with cloud.runtime.db.session() as session, pytest.raises(NoCapacity):
        nodes.resize_reservation(session, reservation_id, Resources(vcpu=1000, memory_mib=1024, disk_gib=25))
    assert node_used(cloud) == used
    for _twice in range(2):
        with cloud.runtime.db.session() as session:
            held = nodes.resize_reservation(session, reservation_id, Resources(vcpu=2, memory_mib=2048, disk_gib=30))
        assert held.resources == Resources(vcpu=2, memory_mib=2048, disk_gib=30)
        assert node_used(cloud) == Resources(vcpu=used.vcpu + 1, memory_mib=used.memory_mib + 1024,
                                             disk_gib=used.disk_gib + 5)


# --- reset password ------------------------------------------------------------------------------


def test_a_password_reset_answers_the_new_password_once_and_applies_it_at_the_next_boot(cloud: Cloud) -> None:
    client = cloud.client()
    uid = running_server(cloud)["id"]
    name = guest_of(cloud, uid)
    old = sealed_password(cloud, uid)
    booted = cloud.driver.wait_ready(name, 1)

    answer = client.post(f"/api/instances/{uid}/reset-password")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    password = body["root_password"]
    assert password != old and len(password) >= 8 and sealed_password(cloud, uid) == password
    assert body["applied"] == "next_boot" and body["guest_agent"] is False and "next boot" in body["message"]
    assert [t["name"] for t in body["action"]["tasks"]] == list(RESET_PASSWORD_TASKS)
    settles_at(client, uid, "running")
    action = last_action(cloud, uid)
    assert action["status"] == "success"
    assert password not in str(client.get(f"/api/instances/{uid}").json())  # shown once, in that answer only
    assert password not in str(action)
    assert cloud.driver.wait_ready(name, 1) == booted  # not restarted: the running guest is as it was

    client.post(f"/api/instances/{uid}/power/restart")
    settles_at(client, uid, "running")
    ready = cloud.driver.wait_ready(name, 1)
    assert ready.instance_id == f"{uid}-a{action['id']}" and ready.root_password_set is True


def test_a_password_reset_with_reboot_restarts_the_guest_with_it(cloud: Cloud) -> None:
    client = cloud.client()
    uid = running_server(cloud)["id"]
    name = guest_of(cloud, uid)
    answer = client.post(f"/api/instances/{uid}/reset-password", json={"reboot": True})
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "restarting" and answer.json()["applied"] == "now"
    settles_at(client, uid, "running")
    action = last_action(cloud, uid)
    assert action["status"] == "success" and "password set" in action["tasks"][1]["detail"]
    assert cloud.driver.wait_ready(name, 1).instance_id == f"{uid}-a{action['id']}"


@pytest.mark.parametrize("reboot", [False, True])
def test_the_guest_agent_sets_a_new_password_at_once_without_a_restart(cloud: Cloud, reboot: bool) -> None:
    cloud.image_can(ImageCapability.GUEST_AGENT)
    client = cloud.client()
    uid = running_server(cloud)["id"]
    name = guest_of(cloud, uid)
    booted = cloud.driver.wait_ready(name, 1)
    answer = client.post(f"/api/instances/{uid}/reset-password", json={"reboot": reboot})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["applied"], body["guest_agent"], body["status"]) == ("now", True, "running")
    assert "without a restart" in body["message"]
    settles_at(client, uid, "running")
    action = last_action(cloud, uid)
    assert action["status"] == "success" and "the guest agent set the new root password" in action["tasks"][1]["detail"]
    assert cloud.driver.guest_password(name, "root") == body["root_password"] == sealed_password(cloud, uid)
    assert cloud.driver.wait_ready(name, 1) == booted  # not restarted, even when a reboot was asked for


def test_a_stopped_server_with_the_agent_gets_its_password_at_its_next_start(cloud: Cloud) -> None:
    cloud.image_can(ImageCapability.GUEST_AGENT)
    client = cloud.client()
    uid = running_server(cloud)["id"]
    client.post(f"/api/instances/{uid}/power/shutdown")
    settles_at(client, uid, "stopped")
    body = client.post(f"/api/instances/{uid}/reset-password").json()
    assert (body["applied"], body["guest_agent"]) == ("next_boot", True) and "when it starts" in body["message"]
    settles_at(client, uid, "stopped")
    assert last_action(cloud, uid)["status"] == "success"
    assert cloud.driver.guest_password(guest_of(cloud, uid), "root") is None


# --- refusals ------------------------------------------------------------------------------------


def test_while_an_action_runs_each_is_409(cloud: Cloud, node_driver: Callable[[Any], None]) -> None:
    client = cloud.client()
    uid = running_server(cloud)["id"]
    held = HeldDriver(cloud.driver, "wait_ready")
    node_driver(held)
    assert client.post(f"/api/instances/{uid}/reinstall", json={"os_template_id": cloud.template_id,
                                                                "os_name": ""}).status_code == 200
    assert held.waiting.wait(30)
    shown = client.get(f"/api/instances/{uid}").json()
    assert shown["status"] == "provisioning" and shown["allowed_actions"] == []
    before = cloud.balance()
    busy = [client.post(f"/api/instances/{uid}/reinstall", json={"os_template_id": cloud.template_id,
                                                                 "os_name": ""}),
            client.post(f"/api/instances/{uid}/upgrade", json={"package_id": plan_id(cloud, "scout-2"),
                                                               "reboot": False}),
            client.post(f"/api/instances/{uid}/reset-password")]
    assert [b.status_code for b in busy] == [409, 409, 409], [b.text for b in busy]
    assert {b.json()["code"] for b in busy} == {"INSTANCE_BUSY"}
    assert cloud.balance() == before
    held.gate.set()
    settles_at(client, uid, "running")
    assert [a["command"] for a in actions_of(client, uid)] == ["reinstall", "create"]


def test_a_suspended_server_is_403_for_each(cloud: Cloud) -> None:
    client = cloud.client()
    uid = running_server(cloud)["id"]
    with cloud.runtime.db.session() as session:
        row = repository.instance(session, uid, lock=True)
        assert row is not None
        row.status = InstanceStatus.SUSPENDED
    refused = [client.post(f"/api/instances/{uid}/reinstall", json={"os_template_id": cloud.template_id,
                                                                    "os_name": ""}),
               client.post(f"/api/instances/{uid}/upgrade", json={"package_id": plan_id(cloud, "scout-2"),
                                                                  "reboot": False}),
               client.post(f"/api/instances/{uid}/reset-password")]
    assert [r.status_code for r in refused] == [403, 403, 403], [r.text for r in refused]
    assert {r.json()["code"] for r in refused} == {"VPS_SUSPENDED"}
    assert [a["command"] for a in actions_of(client, uid)] == ["create"]
