"""Power actions on one real guest: a `cloudlet serve` process drives a QEMU guest (TCG) on this machine's
libvirtd through the primary and CyberPanel surfaces, and libvirt itself is asked what happened.

The module shares one guest (TCG boots are slow and the machine is shared); its tests run in order,
each starting from the state the one before left: shutdown, boot, restart, poweroff, start, suspension
for an unpaid renewal and reactivation, and a shutdown that the guest no longer hears (root stopped its
acpid on the serial console), which ends in a power-off once the server's shutdown timeout has passed.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import libvirt
import pytest

from cloudlet.drivers.base import GuestState
from cloudlet.drivers.libvirt.domain_xml import domain_name
from cloudlet.kit import clock
from tests.cloud import credit
from tests.contract.conftest import tiny_image
from tests.e2e.served import Guest, cyberpanel, served_guest
from tests.e2e.test_instances_libvirt import (
    BOOT_SECONDS,
    PASSWORD,
    client,
)
from tests.integration.test_worker import wait_for

__all__ = ["tiny_image"]  # the fixture this module uses from the contract suite

SHUTDOWN_TIMEOUT = 30  # a listening tiny guest is off in a few seconds, even on a busy machine
READY = "CLOUDLET_READY"
SHUTTING_DOWN = "cloudlet: shutting down"  # what the guest's rc.shutdown prints


@pytest.fixture(scope="module")
def guest(tiny_image: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Guest]:
    """This machine's libvirtd as the node, a `cloudlet serve` on it, and one running server of a customer's."""
    with served_guest(tmp_path_factory, tiny_image, "power-1.example.com",
                      {"CLOUDLET_INSTANCE_SHUTDOWN_TIMEOUT_SECONDS": str(SHUTDOWN_TIMEOUT)}) as made:
        yield made


def libvirt_state(guest: Guest) -> tuple[int, int]:
    """(state, reason) as libvirt itself reports the guest's domain."""
    conn = libvirt.open("qemu:///system")
    try:
        state, reason = conn.lookupByName(domain_name(guest.name)).state(0)
        return int(state), int(reason)
    finally:
        conn.close()


def primary(guest: Guest) -> httpx.Client:
    """The customer on the primary surface."""
    return client(guest.url, guest.person)


def settles(http: httpx.Client, guest: Guest, wanted: str, seconds: float = BOOT_SECONDS) -> dict[str, Any]:
    """Wait until the server shows `wanted` with no action holding it; its detail."""
    def check() -> dict[str, Any] | None:
        found: dict[str, Any] = http.get(f"/api/instances/{guest.uid}").json()
        return found if found["status"] == wanted and not found["locked"] else None
    result: dict[str, Any] = wait_for(check, f"the server to be {wanted}", seconds=seconds)
    return result


def last_action(http: httpx.Client, guest: Guest) -> dict[str, Any]:
    """The server's newest action."""
    found: dict[str, Any] = http.get(f"/api/instances/{guest.uid}/actions").json()[0]
    return found


def console(guest: Guest) -> str:
    """The guest's serial console since it last (re)started, as the node keeps it."""
    return guest.node.console_output(guest.name).text


def test_shutdown_stops_the_guest_from_inside(guest: Guest) -> None:
    with primary(guest) as http:
        answer = http.post(f"/api/instances/{guest.uid}/power/shutdown")
        assert answer.status_code == 200, answer.text
        assert answer.json()["status"] == "stopping" and answer.json()["action"]["command"] == "shutdown"
        detail = settles(http, guest, "stopped", seconds=SHUTDOWN_TIMEOUT + 60)
        assert detail["vf_remote_state"]["state"] == "stopped"
        action = last_action(http, guest)
        assert action["status"] == "success"
        assert action["tasks"][0]["detail"].startswith(f"guest {guest.name} shut down in ")
    assert libvirt_state(guest) == (libvirt.VIR_DOMAIN_SHUTOFF, libvirt.VIR_DOMAIN_SHUTOFF_SHUTDOWN)
    assert SHUTTING_DOWN in console(guest)  # the guest heard the ACPI button and shut itself down


def test_boot_brings_the_guest_back_with_a_fresh_ready_line(guest: Guest) -> None:
    with primary(guest) as http:
        answer = http.post(f"/api/instances/{guest.uid}/power/boot")
        assert answer.status_code == 200, answer.text
        assert answer.json()["status"] == "starting"
        busy = http.post(f"/api/instances/{guest.uid}/power/poweroff")  # the boot holds the server
        assert busy.status_code == 409 and busy.json()["code"] == "INSTANCE_BUSY"
        settles(http, guest, "running")
        assert last_action(http, guest)["status"] == "success"
        again = http.post(f"/api/instances/{guest.uid}/power/boot")
        assert again.status_code == 409 and again.json()["code"] == "INVALID_STATE"
    assert libvirt_state(guest)[0] == libvirt.VIR_DOMAIN_RUNNING
    log = console(guest)
    # the log was emptied at the start: one ready line of this boot, nothing of the last run's shutdown
    assert log.count(READY) == 1 and SHUTTING_DOWN not in log
    assert "hostname=power-1" in log and "password=set" in log


def test_cyberpanel_restart_answers_once_the_guest_is_back(guest: Guest) -> None:
    with cyberpanel(guest) as http:
        answer = http.post(f"/api/v1/vps/{guest.vps}/restart")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["message"] == "VPS restarted successfully"
    assert body["data"]["status"] == "running" and body["data"]["id"] == guest.vps
    assert libvirt_state(guest)[0] == libvirt.VIR_DOMAIN_RUNNING
    log = console(guest)
    # emptied before the ACPI restart: the guest's own shutdown, then the ready line of the new boot
    assert log.count(READY) == 1 and log.index(SHUTTING_DOWN) < log.index(READY)
    with primary(guest) as http:
        action = last_action(http, guest)
    assert action["command"] == "restart" and action["status"] == "success"
    assert [t["status"] for t in action["tasks"]] == ["completed"] * 3


def test_poweroff_cuts_the_power(guest: Guest) -> None:
    before = console(guest).count(SHUTTING_DOWN)  # one, from the restart's shutdown
    with primary(guest) as http:
        answer = http.post(f"/api/instances/{guest.uid}/power/poweroff")
        assert answer.status_code == 200 and answer.json()["status"] == "stopping"
        settles(http, guest, "stopped", seconds=60)
    assert libvirt_state(guest) == (libvirt.VIR_DOMAIN_SHUTOFF, libvirt.VIR_DOMAIN_SHUTOFF_DESTROYED)
    assert console(guest).count(SHUTTING_DOWN) == before  # no shutdown inside: the power was cut


def test_cyberpanel_start_answers_once_the_guest_runs(guest: Guest) -> None:
    with cyberpanel(guest) as http:
        answer = http.post(f"/api/v1/vps/{guest.vps}/start")
        assert answer.status_code == 200, answer.text
        assert answer.json()["message"] == "VPS started successfully"
        assert answer.json()["data"]["status"] == "running"
        again = http.post(f"/api/v1/vps/{guest.vps}/start")
        assert again.status_code == 409 and again.json()["error_code"] == "INVALID_STATE"
    assert guest.node.state(guest.name) is GuestState.RUNNING and console(guest).count(READY) == 1


def spend_the_wallet(guest: Guest) -> None:
    """Debit everything the customer has left."""
    from cloudlet.billing import service as billing
    from cloudlet.billing.models import EntryKind

    with guest.runtime.db.session() as session:
        wallet = billing.wallet_of(session, guest.runtime.settings, guest.person.project_id)
        left = billing.balance_cents(session, guest.runtime.settings, guest.person.project_id)
        billing.debit(session, wallet.id, left, kind=EntryKind.ADMIN_DEBIT, key=f"spend-all-{uuid.uuid4().hex}")


def test_an_unpaid_server_is_suspended_refused_on_both_surfaces_and_reactivated(guest: Guest) -> None:
    from cloudlet.billing import jobs

    spend_the_wallet(guest)
    # the renewal job as it will run once the cycle and its grace have passed (the server's own worker runs
    # it with today's clock, when nothing is due): the subscription is suspended, and the server's sweep
    # powers the guest off
    grace = timedelta(hours=guest.runtime.settings.billing_grace_hours)
    report = jobs.run_renewals(guest.runtime.db, guest.runtime.settings, now=clock.now() + timedelta(days=32) + grace)
    assert report.suspended == 1
    with primary(guest) as http:
        shown = settles(http, guest, "suspended", seconds=SHUTDOWN_TIMEOUT + 60)
        assert shown["allowed_actions"] == ["reactivate", "delete"]
        refused = http.post(f"/api/instances/{guest.uid}/power/boot")
        assert refused.status_code == 403 and refused.json()["code"] == "VPS_SUSPENDED", refused.text
    assert guest.node.state(guest.name) is GuestState.STOPPED  # off, its disk kept
    with cyberpanel(guest) as http:
        refused = http.post(f"/api/v1/vps/{guest.vps}/start")
        assert refused.status_code == 403 and refused.json()["error_code"] == "VPS_SUSPENDED", refused.text
    with primary(guest) as http:
        unpaid = http.post(f"/api/instances/{guest.uid}/reactivate")
        assert unpaid.status_code == 402, unpaid.text
        credit(guest.runtime, guest.person, 10_000)
        back = http.post(f"/api/instances/{guest.uid}/reactivate")
        assert back.status_code == 200 and back.json()["status"] == "starting", back.text
        settles(http, guest, "running")
    assert guest.node.state(guest.name) is GuestState.RUNNING
    assert console(guest).count(READY) == 1 and "hostname=power-1" in console(guest)


def printed(guest: Guest, text: str, since: int) -> bool:
    """Whether the guest's console log shows text after its first `since` characters."""
    return text in console(guest)[since:]


def type_on_console(guest: Guest, steps: list[tuple[str, str]]) -> None:
    """Type on the guest's serial console: each step's keys, then wait for its text in the console log."""
    conn = libvirt.open("qemu:///system")
    try:
        stream = conn.newStream(0)
        conn.lookupByName(domain_name(guest.name)).openConsole(None, stream, libvirt.VIR_DOMAIN_CONSOLE_FORCE)
        try:
            for keys, expected in steps:
                mark = len(console(guest))
                stream.send(keys.encode())
                wait_for(partial(printed, guest, expected, mark), f"{expected!r} on the console", seconds=90)
        finally:
            stream.abort()
    finally:
        conn.close()


def test_a_guest_that_ignores_the_shutdown_is_powered_off_after_the_timeout(guest: Guest) -> None:
    # root logs in on the serial console and stops acpid, the daemon that turns the ACPI power button into
    # a poweroff: the guest still runs, and no longer hears a shutdown request
    type_on_console(guest, [("\r", "login: "), ("root\r", "Password: "), (f"{PASSWORD}\r", "# "),
                            ('killall acpid; sleep 1; pidof acpid || echo "NO_""ACPID"\r', "NO_ACPID")])
    began = time.monotonic()
    with cyberpanel(guest) as http:
        answer = http.post(f"/api/v1/vps/{guest.vps}/stop")
    took = time.monotonic() - began
    assert answer.status_code == 200, answer.text
    assert answer.json()["message"] == "VPS stopped successfully" and answer.json()["data"]["status"] == "stopped"
    assert took >= SHUTDOWN_TIMEOUT
    assert libvirt_state(guest) == (libvirt.VIR_DOMAIN_SHUTOFF, libvirt.VIR_DOMAIN_SHUTOFF_DESTROYED)
    assert SHUTTING_DOWN not in console(guest)[console(guest).index("NO_ACPID"):]
    with primary(guest) as http:
        action = last_action(http, guest)
    assert action["command"] == "shutdown" and action["status"] == "success"
    assert action["tasks"][0]["detail"] == (f"guest {guest.name} did not shut down within {SHUTDOWN_TIMEOUT} s; "
                                            "its power was cut")
