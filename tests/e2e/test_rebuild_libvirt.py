"""Reinstall, upgrade and password reset of one real guest: a `cloudlet serve` process drives a QEMU guest (TCG)
on this machine's libvirtd through the primary and CyberPanel surfaces, and what changed is read from inside the
guest, as root logged in on its serial console.

The module shares one guest (TCG boots are slow and the machine is shared); its tests run in order, each
starting from the state the one before left: a reinstall on each surface (a mark written on the disk is gone, the
address and hostname are the same), an upgrade without reboot (the disk grows under the running guest) and the
refusals of a smaller disk and of an upgrade the wallet cannot pay, an upgrade with reboot (the guest counts the new
vCPUs, memory and disk), a password reset that the next boot applies (the new password logs in, the old one no
longer does), and one with reboot and a password of the customer's choosing.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from cloudlet.catalog import service as catalog
from cloudlet.drivers.base import ConsoleClosed, SerialConsole
from tests.cloud import credit
from tests.contract.conftest import tiny_image
from tests.e2e import serial_reading
from tests.e2e.served import Guest, cyberpanel, served_guest
from tests.e2e.test_instances_libvirt import (
    PASSWORD,
    client,
    idle,
)

__all__ = ["tiny_image"]  # the fixture this module uses from the contract suite

GIB = 1024**3
MARK_SECTOR = 1_048_576  # 512 MiB into the disk: past the image's 64 MiB, inside the overlay's own space
PROMPT = "# "


@pytest.fixture(scope="module")
def guest(tiny_image: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Guest]:
    """This machine's libvirtd as the node, a `cloudlet serve` on it, and one running server of a customer's."""
    with served_guest(tmp_path_factory, tiny_image, "rebuild-1.example.com",
                      {"CLOUDLET_INSTANCE_SHUTDOWN_TIMEOUT_SECONDS": "30"}) as made:
        yield made


# --- inside the guest ----------------------------------------------------------------------------


LOGIN_ANSWERS = (PROMPT, "Login incorrect", "login: ")  # what the guest prints after a password


class Typing:
    """A root session on the guest's serial console: typed through a console session, answered from the
    console log (serial_reading.from_log says why)."""

    def __init__(self, guest: Guest) -> None:
        self.guest = guest
        self.session: SerialConsole = guest.node.open_serial(guest.name)
        self.receive = serial_reading.from_log(lambda: guest.node.console_output(guest.name).text)

    def read_until(self, *wanted: str, seconds: float = 120.0) -> str:
        """What the guest printed until one of `wanted` appeared (a TCG guest on a busy 2-core machine has been
        seen to take a minute between the password and its shell prompt)."""
        found, seen = serial_reading.read_until(self.receive, self.session.write, wanted, seconds)
        assert found, f"none of {wanted!r} on the serial console; it printed {seen[-2000:]!r}"
        return seen

    def login(self, password: str) -> bool:
        """Log in as root; whether the password was accepted."""
        before, after = serial_reading.log_in(self.receive, self.session.write, password, LOGIN_ANSWERS,
                                              seconds=120.0)
        assert any(end in after for end in LOGIN_ANSWERS), (
            f"no answer to the password on the serial console; it printed {(before + after)[-2000:]!r}")
        return PROMPT in after

    def close(self) -> None:
        """End the console session."""
        with contextlib.suppress(ConsoleClosed):
            self.session.close()


def in_guest(guest: Guest, command: str, password: str = PASSWORD) -> str:
    """Run a shell command as root on the guest's serial console; what it printed."""
    typing = Typing(guest)
    try:
        assert typing.login(password), "root could not log in on the serial console"
        # the quotes keep the echoed command line from containing the end mark itself
        typing.session.write(f'echo BEGIN_""OUT; {command}; echo END_""OUT\r'.encode())
        seen = typing.read_until("END_OUT\r\n", "END_OUT\n")
        typing.session.write(b"exit\r")
        return seen.split("BEGIN_OUT", 1)[1].split("END_OUT", 1)[0].strip()
    finally:
        typing.close()


def password_accepted(guest: Guest, password: str) -> bool:
    """Whether root logs in with the password on the serial console."""
    typing = Typing(guest)
    try:
        accepted = typing.login(password)
        if accepted:
            typing.session.write(b"exit\r")
        return accepted
    finally:
        typing.close()


def newest_action(http: httpx.Client, guest: Guest) -> dict[str, Any]:
    """The instance's newest action."""
    found: dict[str, Any] = http.get(f"/api/instances/{guest.uid}/actions").json()[0]
    return found


def succeeded(answer: httpx.Response, message: str) -> dict[str, Any]:
    """The data of a CyberPanel answer that reports success with `message` (at its start)."""
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    assert body["success"] is True and body["message"].startswith(message), body
    data: dict[str, Any] = body["data"]
    return data


def plan_id(guest: Guest, code: str) -> int:
    """A default catalogue plan's id."""
    with guest.runtime.db.session(write=False) as session:
        return catalog.get_plan(session, code).id


# --- the tests, in order ---------------------------------------------------------------------------


def test_a_reinstall_gives_a_fresh_disk_with_the_same_address_and_hostname(guest: Guest) -> None:
    mark = f"dd if=/dev/vda bs=512 skip={MARK_SECTOR} count=1 2>/dev/null | head -c 13; echo"
    written = in_guest(guest, f"echo CLOUDLET_MARK | dd of=/dev/vda bs=512 seek={MARK_SECTOR} conv=notrunc,fsync "
                              f"2>/dev/null; {mark}")
    assert written.endswith("CLOUDLET_MARK"), written  # the mark is on the disk
    with client(guest.url, guest.person) as http:
        options = http.get(f"/api/instances/{guest.uid}/reinstall-options").json()
        template = options[0]["templates"][0]["id"]
        answer = http.post(f"/api/instances/{guest.uid}/reinstall",
                           json={"os_template_id": template, "os_name": "Debian 12 (reinstalled)"})
        assert answer.status_code == 200, answer.text
        assert answer.json()["status"] == "provisioning"
        shown = idle(http, guest.uid)
        action = newest_action(http, guest)
    assert action["command"] == "reinstall" and action["status"] == "success", action
    assert shown["os_name"] == "Debian 12 (reinstalled)" and shown["main_ip"] == guest.address
    ready = guest.node.wait_ready(guest.name, 5)
    assert ready.instance_id == f"{guest.uid}-a{action['id']}"
    found = in_guest(guest, f"hostname; ip -4 addr show eth0 | grep -o 'inet [0-9.]*'; ({mark}) | od -An -c | head -1")
    lines = found.splitlines()
    assert lines[0].strip() == "rebuild-1"
    assert lines[1].strip() == f"inet {guest.address}"
    assert "CLOUDLET_MARK" not in found and "C   L   O   U" not in found, found
    assert lines[2].split()[:13] == ["\\0"] * 13, found  # the sector reads zeros on the fresh disk


def test_a_cyberpanel_reinstall_rebuilds_the_disk_again(guest: Guest) -> None:
    mark = f"dd if=/dev/vda bs=512 skip={MARK_SECTOR} count=1 2>/dev/null | head -c 13; echo"
    in_guest(guest, f"echo CLOUDLET_MARK | dd of=/dev/vda bs=512 seek={MARK_SECTOR} conv=notrunc,fsync 2>/dev/null")
    with cyberpanel(guest) as http:
        offered = http.get(f"/api/v1/vps/{guest.vps}/reinstall-options").json()["data"]["templates"]
        data = succeeded(http.post(f"/api/v1/vps/{guest.vps}/reinstall", json={"template_id": offered[0]["id"]}),
                         "VPS reinstalled successfully")
    assert data["status"] == "running"
    with client(guest.url, guest.person) as http:
        action = newest_action(http, guest)
    assert action["command"] == "reinstall" and action["status"] == "success", action
    assert guest.node.wait_ready(guest.name, 5).instance_id == f"{guest.uid}-a{action['id']}"
    found = in_guest(guest, f"hostname; ({mark}) | od -An -c | head -1")
    assert found.splitlines()[0].strip() == "rebuild-1" and "C   L   O   U" not in found, found


def test_an_upgrade_is_refused_for_a_smaller_disk_on_both_surfaces(guest: Guest) -> None:
    with cyberpanel(guest) as http:
        data = succeeded(http.post(f"/api/v1/vps/{guest.vps}/upgrade", json={"plan_id": plan_id(guest, "scout-2"),
                                                                            "reboot": False}),
                         "VPS upgraded successfully")  # first to 60 GiB, so that forge-2's 50 GiB is smaller
        assert data["applied"] == "next_boot"
        smaller = http.post(f"/api/v1/vps/{guest.vps}/upgrade", json={"plan_id": plan_id(guest, "forge-2"),
                                                                     "reboot": True})
    assert smaller.status_code == 400 and smaller.json()["error_code"] == "DISK_TOO_SMALL", smaller.text
    with client(guest.url, guest.person) as http:
        smaller = http.post(f"/api/instances/{guest.uid}/upgrade", json={"package_id": plan_id(guest, "forge-2"),
                                                                         "reboot": True})
    assert smaller.status_code == 422, smaller.text
    assert smaller.json()["code"] == "DISK_TOO_SMALL"
    # the disk grew while the guest ran, and the guest sees it without a restart
    assert in_guest(guest, "cat /sys/block/vda/size") == str(60 * GIB // 512)
    assert guest.node.hardware(guest.name)[2:] == (1, 1024)  # vCPUs and memory wait for the next boot


def test_an_upgrade_the_wallet_cannot_pay_is_refused_on_both_surfaces(guest: Guest) -> None:
    from cloudlet.billing import service as billing
    from cloudlet.billing.models import EntryKind

    with guest.runtime.db.session() as session:
        wallet = billing.wallet_of(session, guest.runtime.settings, guest.person.project_id)
        left = billing.balance_cents(session, guest.runtime.settings, guest.person.project_id)
        billing.debit(session, wallet.id, left, kind=EntryKind.ADMIN_DEBIT, key=f"spend-all-{uuid.uuid4().hex}")
    with client(guest.url, guest.person) as http:
        unpaid = http.post(f"/api/instances/{guest.uid}/upgrade", json={"package_id": plan_id(guest, "scout-4"),
                                                                        "reboot": True})
        assert unpaid.status_code == 402, unpaid.text
    with cyberpanel(guest) as http:
        unpaid = http.post(f"/api/v1/vps/{guest.vps}/upgrade", json={"plan_id": plan_id(guest, "scout-4"),
                                                                    "reboot": True})
        # CyberPanel answers an order the balance cannot pay with a 400, as its /vps/create does
        assert unpaid.status_code == 400 and unpaid.json()["error_code"] == "INSUFFICIENT_BALANCE", unpaid.text
    assert guest.node.hardware(guest.name)[2:] == (1, 1024)  # nothing changed
    credit(guest.runtime, guest.person, left)


def test_an_upgrade_with_reboot_shows_the_new_vcpus_memory_and_disk_inside_the_guest(guest: Guest) -> None:
    with client(guest.url, guest.person) as http:
        answer = http.post(f"/api/instances/{guest.uid}/upgrade", json={"package_id": plan_id(guest, "scout-4"),
                                                                        "reboot": True})
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["status"] == "restarting" and body["applied"] == "now" and body["charged_cents"] > 0
        shown = idle(http, guest.uid)
        action = newest_action(http, guest)
    assert action["status"] == "success", action
    assert (shown["vcpu"], shown["ram"], shown["storage"]) == (4, 8, 120)
    assert guest.node.hardware(guest.name)[2:] == (4, 8192)
    found = in_guest(guest, "grep -c ^processor /proc/cpuinfo; grep MemTotal /proc/meminfo; cat /sys/block/vda/size")
    cpus, memory, sectors = found.splitlines()
    assert int(cpus) == 4
    assert int(memory.split()[1]) > 7 * 1024 * 1024  # kB: 8 GiB less what the kernel keeps for itself
    assert int(sectors) == 120 * GIB // 512


def test_a_password_reset_applies_at_the_next_boot(guest: Guest) -> None:
    with client(guest.url, guest.person) as http:
        answer = http.post(f"/api/instances/{guest.uid}/reset-password")
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["applied"] == "next_boot" and body["guest_agent"] is False
        password = body["root_password"]
        idle(http, guest.uid)
        reset = newest_action(http, guest)
        assert reset["status"] == "success", reset
        assert password_accepted(guest, PASSWORD)  # the running guest keeps the password it booted with
        assert http.post(f"/api/instances/{guest.uid}/power/restart").status_code == 200
        idle(http, guest.uid)
    assert guest.node.wait_ready(guest.name, 5).instance_id == f"{guest.uid}-a{reset['id']}"
    assert in_guest(guest, "hostname", password=password) == "rebuild-1"
    assert not password_accepted(guest, PASSWORD)


def test_a_cyberpanel_password_reset_with_reboot_applies_the_chosen_password_at_once(guest: Guest) -> None:
    chosen = "Chosen-pass-2026"
    with cyberpanel(guest) as http:
        data = succeeded(http.post(f"/api/v1/vps/{guest.vps}/reset-password",
                                   json={"root_password": chosen, "reboot": True}), "Root password reset successfully")
    assert data["root_password"] == chosen and data["applied"] == "now"
    assert in_guest(guest, "hostname", password=chosen) == "rebuild-1"
