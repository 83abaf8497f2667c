"""Reinstall, upgrade and password reset on the CyberPanel surface (/api/v1/vps/{id}/...), Cloudlet extensions
carried out by the real worker (DBOS) on a FakeDriver node: what the guest gets (image, size, password), what the
wallet records, the answers once the action ends or while it goes on, and the refusals in CyberPanel's envelope
(404 another tenant's, 409 busy or wrong state, 403 suspended, 400 for a bad template, plan, password or an
unpayable upgrade)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from cloudlet.billing import service as billing
from cloudlet.billing.models import EntryKind
from cloudlet.catalog import service as catalog
from cloudlet.catalog.schemas import TemplateCreate
from cloudlet.drivers.base import GuestFailed, GuestReady, GuestSpec
from cloudlet.images import service as images
from cloudlet.images.models import ImageSource
from cloudlet.images.schemas import ImageRegister
from cloudlet.instances import repository
from cloudlet.instances.models import InstanceStatus
from cloudlet.instances.service import unseal
from tests.cloud import Cloud, HeldDriver, WrappedDriver
from tests.helpers import make_user, mint_token
from tests.integration.test_power import actions_of, cp, guest_of, numeric_id, running_server, settles_at

GIB = 1024**3
CHANGED_KEYS = {"id", "vmid", "name", "status", "ip_address"}


# --- helpers -------------------------------------------------------------------------------------


def plan_id(cloud: Cloud, code: str) -> int:
    """A default catalogue plan's id."""
    with cloud.runtime.db.session(write=False) as session:
        return catalog.get_plan(session, code).id


def add_template(cloud: Cloud, image_file: Path, code: str, image: str, *, min_disk_gb: int = 1) -> int:
    """A new active template (its own image on the node and in the catalogue); its id."""
    info = cloud.driver.import_image(image, image_file)
    with cloud.runtime.db.session() as session:
        registered = images.register_image(session, ImageRegister(
            name=image, source=ImageSource.BUILT, volume=image, virtual_size_bytes=info.virtual_size_bytes))
        return catalog.create_template(session, TemplateCreate(
            code=code, family="alpine", name=f"Alpine ({code})", os="Alpine 3", version="3", min_ram_mb=256,
            min_disk_gb=min_disk_gb, image_id=registered.id)).id


def sealed_password(cloud: Cloud, uid: str) -> str:
    """The root password the database keeps for the instance, opened."""
    with cloud.runtime.db.session(write=False) as session:
        row = repository.instance(session, uid)
        assert row is not None and row.root_password is not None
        return unseal(cloud.runtime.settings, row.root_password)


def seeded(cloud: Cloud, guest: str) -> GuestSpec:
    """What the guest's seed disk holds on the fake node."""
    seed = cloud.driver._guests[guest].seed
    assert seed is not None
    return seed


def set_status(cloud: Cloud, uid: str, status: InstanceStatus) -> None:
    """Put the instance in a status directly (what suspension or a failed build leaves)."""
    with cloud.runtime.db.session() as session:
        row = repository.instance(session, uid, lock=True)
        assert row is not None
        row.status = status


def error_of(answer: httpx.Response, status: int) -> str:
    """The CyberPanel error code of a refused request, after checking its envelope."""
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert body["success"] is False and body["error"] and body["message"]
    code: str = body["error_code"]
    return code


def done(answer: httpx.Response, message: str) -> dict[str, Any]:
    """The data of a successful answer whose message starts with `message`."""
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["success"] is True and body["message"].startswith(message), body
    data: dict[str, Any] = body["data"]
    return data


# --- reinstall -----------------------------------------------------------------------------------


def test_reinstall_options_are_the_templates_the_plan_fits_in_the_templates_shape(
        cloud: Cloud, fake_image_file: Path) -> None:
    fits = add_template(cloud, fake_image_file, "alpine-3-tiny", "tiny-b")
    too_big = add_template(cloud, fake_image_file, "alpine-3-big", "tiny-c", min_disk_gb=100)
    vps = numeric_id(cloud, running_server(cloud)["id"])
    answer = cp(cloud).get(f"/api/v1/vps/{vps}/reinstall-options")
    assert answer.status_code == 200, answer.text
    assert answer.json()["success"] is True
    offered = answer.json()["data"]["templates"]
    catalogue = {t["id"]: t for t in cp(cloud).get("/api/v1/vps/templates").json()["data"]["templates"]}
    assert {t["id"] for t in offered} == {str(cloud.template_id), str(fits)}
    assert str(too_big) in catalogue  # on sale, but not for a 25 GB disk
    assert all(t == catalogue[t["id"]] for t in offered)  # exactly as /vps/templates shows them


def test_a_reinstall_by_slug_rebuilds_the_guest_from_the_new_image(cloud: Cloud, fake_image_file: Path) -> None:
    other = add_template(cloud, fake_image_file, "alpine-3-tiny", "tiny-b")
    server = running_server(cloud)
    uid, vps, guest = server["id"], numeric_id(cloud, server["id"]), guest_of(cloud, server["id"])
    password = sealed_password(cloud, uid)
    cloud.driver.write_disk(guest, b"old files")

    data = done(cp(cloud).post(f"/api/v1/vps/{vps}/reinstall", json={"template": "alpine-3-tiny"}),
                "VPS reinstalled successfully")
    assert data == {"id": vps, "vmid": 100 + vps, "name": "web-1", "status": "running",
                    "ip_address": server["main_ip"], "template": str(other), "os_name": "Alpine (alpine-3-tiny)"}
    assert cloud.driver._guests[guest].spec.image == "tiny-b"
    assert cloud.driver.read_disk(guest) == b""  # a fresh disk
    reinstall = actions_of(cloud.client(), uid)[0]
    assert reinstall["command"] == "reinstall" and reinstall["status"] == "success"
    ready = cloud.driver.wait_ready(guest, 1)
    assert ready.instance_id == f"{uid}-a{reinstall['id']}"
    assert (ready.hostname, ready.address, ready.root_password_set) == ("web-1", server["main_ip"], True)
    assert seeded(cloud, guest).root_password == password == sealed_password(cloud, uid)

    back = done(cp(cloud).post(f"/api/v1/vps/{vps}/reinstall", json={"template_id": str(cloud.template_id)}),
                "VPS reinstalled successfully")  # by id, as /vps/create takes it
    assert back["template"] == str(cloud.template_id) and back["os_name"] == "Debian 12 (tiny)"
    assert cloud.driver._guests[guest].spec.image == "tiny"
    assert cp(cloud).get(f"/api/v1/vps/{vps}").json()["data"]["status"] == "running"


def test_a_reinstall_still_going_when_the_wait_ends_answers_deploying(
        cloud: Cloud, node_driver: Callable[[Any], None], monkeypatch: pytest.MonkeyPatch) -> None:
    server = running_server(cloud)
    uid, vps = server["id"], numeric_id(cloud, server["id"])
    held = HeldDriver(cloud.driver, "wait_ready")
    node_driver(held)
    monkeypatch.setattr(cloud.runtime.settings, "instance_power_wait_seconds", 0.5)
    began = time.monotonic()
    data = done(cp(cloud).post(f"/api/v1/vps/{vps}/reinstall", json={"template_id": cloud.template_id}),
                "VPS is being reinstalled")
    assert time.monotonic() - began >= 0.5
    assert data["status"] == "deploying"
    assert held.waiting.wait(30)
    held.gate.set()
    settles_at(cloud.client(), uid, "running")
    assert actions_of(cloud.client(), uid)[0]["status"] == "success"


def test_a_reinstall_that_fails_is_500_reinstall_failed(cloud: Cloud, node_driver: Callable[[Any], None]) -> None:
    server = running_server(cloud)
    uid, vps = server["id"], numeric_id(cloud, server["id"])

    def broken(spec: GuestSpec) -> None:
        raise GuestFailed("the storage pool is full")

    node_driver(WrappedDriver(cloud.driver, define_guest=broken))
    answer = cp(cloud).post(f"/api/v1/vps/{vps}/reinstall", json={"template_id": cloud.template_id})
    assert error_of(answer, 500) == "REINSTALL_FAILED"
    assert answer.json()["message"] == "Failed to reinstall VPS: the storage pool is full"
    assert cp(cloud).get(f"/api/v1/vps/{vps}").json()["data"]["status"] == "error"
    assert actions_of(cloud.client(), uid)[0]["status"] == "error"


# --- upgrade -------------------------------------------------------------------------------------


def test_an_upgrade_charges_the_difference_and_resizes_the_guest(cloud: Cloud) -> None:
    server = running_server(cloud)
    uid, vps, guest = server["id"], numeric_id(cloud, server["id"]), guest_of(cloud, server["id"])
    before = cloud.balance()

    data = done(cp(cloud).post(f"/api/v1/vps/{vps}/upgrade", json={"plan_id": plan_id(cloud, "scout-2"),
                                                                   "reboot": True}),
                "VPS upgraded successfully. The server restarts now with 2 vCPU")
    assert set(data) == CHANGED_KEYS | {"plan", "charged", "currency", "applied"}
    assert data["status"] == "running" and data["applied"] == "now" and data["currency"] == "USD"
    assert data["plan"] == {"id": plan_id(cloud, "scout-2"), "name": "Scout 2", "cpu_cores": 2, "ram_mb": 4096,
                            "disk_gb": 60, "bandwidth_gb": 2000, "price": "12.00"}
    charged = before - cloud.balance()
    assert charged > 0 and data["charged"] == f"{charged // 100}.{charged % 100:02d}"
    hardware = cloud.driver.hardware(guest)
    assert (hardware.vcpus, hardware.memory_mib) == (2, 4096)
    assert cloud.driver.stats(guest).disk_capacity_bytes == 60 * GIB

    answer = cp(cloud).post(f"/api/v1/vps/{vps}/upgrade", json={"plan": "scout-4", "reboot": False})
    later = done(answer, "VPS upgraded successfully. The disk grows now")
    assert later["applied"] == "next_boot" and "next boot" in answer.json()["message"]
    assert later["plan"]["cpu_cores"] == 4 and later["plan"]["disk_gb"] == 120
    assert cloud.driver.stats(guest).disk_capacity_bytes == 120 * GIB  # the disk at once
    hardware = cloud.driver.hardware(guest)
    assert (hardware.vcpus, hardware.memory_mib) == (2, 4096)  # the rest at the next boot
    commands = [a["command"] for a in actions_of(cloud.client(), uid)]
    assert commands == ["upgrade", "upgrade", "create"]
    assert cp(cloud).get(f"/api/v1/vps/{vps}").json()["data"]["plan"]["name"] == "Scout 4"


def test_an_upgrade_that_is_smaller_unknown_or_unpayable_is_400_and_changes_nothing(cloud: Cloud) -> None:
    server = running_server(cloud)
    uid, vps = server["id"], numeric_id(cloud, server["id"])
    client = cp(cloud)
    done(client.post(f"/api/v1/vps/{vps}/upgrade", json={"plan_id": plan_id(cloud, "scout-2"), "reboot": False}),
         "VPS upgraded successfully")
    before = cloud.balance()
    smaller = client.post(f"/api/v1/vps/{vps}/upgrade", json={"plan_id": plan_id(cloud, "forge-2"),
                                                               "reboot": False})
    assert error_of(smaller, 400) == "DISK_TOO_SMALL" and "smaller than the instance's 60 GiB" in smaller.text
    assert error_of(client.post(f"/api/v1/vps/{vps}/upgrade", json={"plan_id": plan_id(cloud, "scout-1"),
                                                                     "reboot": False}), 400) == "DISK_TOO_SMALL"
    assert error_of(client.post(f"/api/v1/vps/{vps}/upgrade", json={"plan_id": 987654, "reboot": False}),
                    400) == "PLAN_NOT_FOUND"
    assert error_of(client.post(f"/api/v1/vps/{vps}/upgrade", json={"plan": "no-such-plan", "reboot": False}),
                    400) == "PLAN_NOT_FOUND"
    assert error_of(client.post(f"/api/v1/vps/{vps}/upgrade", json={"plan_id": plan_id(cloud, "scout-4")}),
                    400) == "MISSING_FIELDS"  # reboot is required

    with cloud.runtime.db.session() as session:
        wallet = billing.wallet_of(session, cloud.runtime.settings, cloud.customer.project_id)
        billing.debit(session, wallet.id, before, kind=EntryKind.ADMIN_DEBIT, key="spend-all")
    unpayable = client.post(f"/api/v1/vps/{vps}/upgrade", json={"plan_id": plan_id(cloud, "scout-4"),
                                                                 "reboot": True})
    assert error_of(unpayable, 400) == "INSUFFICIENT_BALANCE"  # CyberPanel's answer to an unpayable order
    assert cloud.balance() == 0
    shown = client.get(f"/api/v1/vps/{vps}").json()["data"]
    assert (shown["status"], shown["plan"]["name"], shown["plan"]["cpu_cores"]) == ("running", "Scout 2", 2)
    assert [a["command"] for a in actions_of(cloud.client(), uid)] == ["upgrade", "create"]


# --- reset password ------------------------------------------------------------------------------


def test_a_generated_password_is_shown_once_and_applies_at_the_next_boot(cloud: Cloud) -> None:
    server = running_server(cloud)
    uid, vps, guest = server["id"], numeric_id(cloud, server["id"]), guest_of(cloud, server["id"])
    old, booted = sealed_password(cloud, uid), cloud.driver.wait_ready(guest, 1)

    answer = cp(cloud).post(f"/api/v1/vps/{vps}/reset-password")
    data = done(answer, "Root password reset successfully. The image has no guest agent")
    assert "next boot" in answer.json()["message"]
    assert data["applied"] == "next_boot" and data["guest_agent"] is False and data["status"] == "running"
    password = data["root_password"]
    assert password != old and len(password) >= 8 and sealed_password(cloud, uid) == password
    reset = actions_of(cloud.client(), uid)[0]
    assert reset["command"] == "reset_password" and reset["status"] == "success"
    assert seeded(cloud, guest).root_password == password  # the seed holds it...
    assert cloud.driver.wait_ready(guest, 1) == booted  # ...and the running guest was left alone
    assert password not in cp(cloud).get(f"/api/v1/vps/{vps}").text and password not in str(reset)

    cp(cloud).post(f"/api/v1/vps/{vps}/restart")
    ready = cloud.driver.wait_ready(guest, 1)
    assert ready.instance_id == f"{uid}-a{reset['id']}" and ready.root_password_set is True


def test_a_chosen_password_with_reboot_applies_now(cloud: Cloud) -> None:
    server = running_server(cloud)
    uid, vps, guest = server["id"], numeric_id(cloud, server["id"]), guest_of(cloud, server["id"])
    boots = cloud.driver._guests[guest].boots
    answer = cp(cloud).post(f"/api/v1/vps/{vps}/reset-password", json={"root_password": "NewSecret2024",
                                                                      "reboot": True})
    data = done(answer, "Root password reset successfully")
    assert "restarts now" in answer.json()["message"]
    assert (data["root_password"], data["applied"], data["status"]) == ("NewSecret2024", "now", "running")
    assert sealed_password(cloud, uid) == "NewSecret2024"
    assert cloud.driver._guests[guest].boots == boots + 1
    reset = actions_of(cloud.client(), uid)[0]
    ready = cloud.driver.wait_ready(guest, 1)
    assert ready.instance_id == f"{uid}-a{reset['id']}" and ready.root_password_set is True
    assert seeded(cloud, guest).root_password == "NewSecret2024"


def test_a_chosen_password_follows_the_create_rules(cloud: Cloud) -> None:
    server = running_server(cloud)
    uid, vps = server["id"], numeric_id(cloud, server["id"])
    old = sealed_password(cloud, uid)
    for password, code in [("short1", "PASSWORD_TOO_SHORT"), ("", "PASSWORD_TOO_SHORT"),
                           ("a1" * 37, "PASSWORD_TOO_LONG"), ("onlyletters", "PASSWORD_WEAK"),
                           ("1234567890", "PASSWORD_WEAK")]:
        answer = cp(cloud).post(f"/api/v1/vps/{vps}/reset-password", json={"root_password": password})
        assert error_of(answer, 400) == code, password
    assert sealed_password(cloud, uid) == old
    assert [a["command"] for a in actions_of(cloud.client(), uid)] == ["create"]


def test_a_failed_password_reset_is_500_and_still_tells_the_password(
        cloud: Cloud, node_driver: Callable[[Any], None]) -> None:
    server = running_server(cloud)
    uid, vps = server["id"], numeric_id(cloud, server["id"])

    def never_ready(name: str, timeout: float) -> GuestReady:
        raise GuestFailed(f"guest {name} was not ready within {timeout:.0f}s")

    node_driver(WrappedDriver(cloud.driver, wait_ready=never_ready))
    answer = cp(cloud).post(f"/api/v1/vps/{vps}/reset-password", json={"reboot": True})
    assert error_of(answer, 500) == "PASSWORD_RESET_FAILED"
    assert answer.json()["message"].startswith("Failed to reset root password: guest ")
    assert answer.json()["data"]["root_password"] == sealed_password(cloud, uid)
    assert actions_of(cloud.client(), uid)[0]["status"] == "error"


# --- refusals ------------------------------------------------------------------------------------


def test_an_unknown_or_unfitting_template_is_400_invalid_template(cloud: Cloud, fake_image_file: Path) -> None:
    too_big = add_template(cloud, fake_image_file, "alpine-3-big", "tiny-c", min_disk_gb=100)
    server = running_server(cloud)
    uid, vps = server["id"], numeric_id(cloud, server["id"])
    client = cp(cloud)
    for template in (987654, "987654", "no-such-template", str(too_big), "alpine-3-big"):
        answer = client.post(f"/api/v1/vps/{vps}/reinstall", json={"template_id": template})
        assert error_of(answer, 400) == "INVALID_TEMPLATE", template
    assert error_of(client.post(f"/api/v1/vps/{vps}/reinstall", json={}), 400) == "MISSING_FIELDS"
    assert client.get(f"/api/v1/vps/{vps}").json()["data"]["status"] == "running"
    assert [a["command"] for a in actions_of(cloud.client(), uid)] == ["create"]


def test_a_busy_vps_is_409_one_in_error_409_and_a_suspended_one_403(
        cloud: Cloud, node_driver: Callable[[Any], None]) -> None:
    server = running_server(cloud)
    uid, vps = server["id"], numeric_id(cloud, server["id"])
    client = cp(cloud)

    def attempts() -> list[httpx.Response]:
        return [client.post(f"/api/v1/vps/{vps}/reinstall", json={"template_id": cloud.template_id}),
                client.post(f"/api/v1/vps/{vps}/upgrade", json={"plan_id": plan_id(cloud, "scout-2"),
                                                                "reboot": False}),
                client.post(f"/api/v1/vps/{vps}/reset-password")]

    held = HeldDriver(cloud.driver, "wait_ready")
    node_driver(held)
    assert cloud.client().post(f"/api/instances/{uid}/power/restart").status_code == 200
    assert held.waiting.wait(30)
    before = cloud.balance()
    assert [error_of(a, 409) for a in attempts()] == ["INSTANCE_BUSY"] * 3
    held.gate.set()
    settles_at(cloud.client(), uid, "running")

    set_status(cloud, uid, InstanceStatus.ERROR)
    assert [error_of(a, 409) for a in attempts()] == ["INVALID_STATE"] * 3
    set_status(cloud, uid, InstanceStatus.SUSPENDED)
    assert [error_of(a, 403) for a in attempts()] == ["VPS_SUSPENDED"] * 3
    assert cloud.balance() == before
    assert [a["command"] for a in actions_of(cloud.client(), uid)] == ["restart", "create"]


def test_a_vps_with_snapshots_is_409_for_a_reinstall_or_upgrade_but_not_a_password_reset(cloud: Cloud) -> None:
    server = running_server(cloud)
    uid, vps = server["id"], numeric_id(cloud, server["id"])
    client = cp(cloud)
    assert client.post(f"/api/v1/vps/{vps}/snapshots/create", json={"name": "kept"}).status_code == 200
    before = cloud.balance()
    refused = [client.post(f"/api/v1/vps/{vps}/reinstall", json={"template_id": cloud.template_id}),
               client.post(f"/api/v1/vps/{vps}/upgrade", json={"plan_id": plan_id(cloud, "scout-2"),
                                                               "reboot": False})]
    assert [error_of(r, 409) for r in refused] == ["SNAPSHOTS_EXIST"] * 2
    assert cloud.balance() == before
    done(client.post(f"/api/v1/vps/{vps}/reset-password"), "Root password reset successfully")
    assert [a["command"] for a in actions_of(cloud.client(), uid)] == ["reset_password", "snapshot", "create"]


def test_another_customers_vps_is_404_and_a_read_key_cannot_change_it(cloud: Cloud) -> None:
    server = running_server(cloud)
    uid, vps = server["id"], numeric_id(cloud, server["id"])
    other = cp(cloud, make_user(cloud.runtime, "other@example.com"))
    for ident in (vps, uid):
        answers = [other.get(f"/api/v1/vps/{ident}/reinstall-options"),
                   other.post(f"/api/v1/vps/{ident}/reinstall", json={"template_id": cloud.template_id}),
                   other.post(f"/api/v1/vps/{ident}/upgrade", json={"plan_id": plan_id(cloud, "scout-2"),
                                                                    "reboot": False}),
                   other.post(f"/api/v1/vps/{ident}/reset-password")]
        assert [error_of(a, 404) for a in answers] == ["VPS_NOT_FOUND"] * 4
    assert error_of(cp(cloud).post("/api/v1/vps/99999999999/reset-password"), 404) == "VPS_NOT_FOUND"

    reader = cloud.api.as_(mint_token(cloud.runtime, cloud.customer, "vps:read"))
    assert reader.get(f"/api/v1/vps/{vps}/reinstall-options").status_code == 200
    refused = [reader.post(f"/api/v1/vps/{vps}/reinstall", json={"template_id": cloud.template_id}),
               reader.post(f"/api/v1/vps/{vps}/upgrade", json={"plan_id": plan_id(cloud, "scout-2"),
                                                                "reboot": False}),
               reader.post(f"/api/v1/vps/{vps}/reset-password")]
    assert [error_of(a, 403) for a in refused] == ["INSUFFICIENT_SCOPE"] * 3
    assert [a["command"] for a in actions_of(cloud.client(), uid)] == ["create"]
