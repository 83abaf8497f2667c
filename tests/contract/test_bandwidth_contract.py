"""The driver contract for a guest's NIC cap (set_bandwidth, bandwidth; GuestSpec.bandwidth_mbit), on the fake and
on libvirt alike. On libvirt the proof is the node's own: the tc qdiscs, classes and filters that libvirt put on
the guest's tap (an HTB class at the cap for traffic to the guest, an ingress policer for traffic from it), and the
<bandwidth> element of the live and persistent domain XML (kilobytes per second: 125 per Mbit/s)."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from dataclasses import replace
from xml.etree import ElementTree

import pytest

from cloudlet.drivers.base import GuestFailed, GuestNotFound, GuestSpec, GuestState, HypervisorDriver
from cloudlet.drivers.fake import FakeDriver
from tests.contract.conftest import IMAGE

BOOT = 120.0
CAPPED = GuestSpec(name="contract-capped", image=IMAGE, vcpus=1, memory_mib=256, disk_gib=1,
                   hostname="contract-capped", bandwidth_mbit=8)


def kernel_lacks() -> str | None:
    """What of tc this kernel lacks that libvirt's <bandwidth> uses (an sfq leaf under its HTB class, and the police
    action of its ingress filter); None when it has both."""
    tap = "cltbwprobe0"
    subprocess.run(["ip", "tuntap", "add", "dev", tap, "mode", "tap"], capture_output=True, check=False, timeout=10)
    try:
        missing = []
        if subprocess.run(["tc", "qdisc", "add", "dev", tap, "root", "handle", "1:", "sfq"], capture_output=True,
                          check=False, timeout=10).returncode:
            missing.append("sch_sfq")
        subprocess.run(["tc", "qdisc", "add", "dev", tap, "ingress"], capture_output=True, check=False, timeout=10)
        if subprocess.run(["tc", "filter", "add", "dev", tap, "parent", "ffff:", "protocol", "all", "u32", "match",
                           "u32", "0", "0", "police", "rate", "8mbit", "burst", "100k", "drop", "flowid", ":1"],
                          capture_output=True, check=False, timeout=10).returncode:
            missing.append("act_police")
        return " and ".join(missing) or None
    finally:
        subprocess.run(["ip", "link", "del", tap], capture_output=True, check=False, timeout=10)


@pytest.fixture(scope="module")
def capped(driver: HypervisorDriver) -> Iterator[str]:
    """A running guest built with an 8 Mbit/s cap."""
    if is_libvirt(driver) and (lacking := kernel_lacks()):
        pytest.skip(f"this node's kernel has no {lacking}, which libvirt's <bandwidth> programs on the tap")
    driver.destroy_guest(CAPPED.name)
    driver.create_guest(CAPPED)
    yield CAPPED.name
    driver.destroy_guest(CAPPED.name)


def domain_xml(name: str, *, inactive: bool = False) -> str:
    import libvirt

    conn = libvirt.open("qemu:///system")
    try:
        return str(conn.lookupByName(f"cloudlet-{name}").XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE if inactive else 0))
    finally:
        conn.close()


def averages(xml: str) -> tuple[int | None, int | None]:
    """(inbound, outbound) average of the NIC's <bandwidth>, kilobytes per second."""
    bandwidth = ElementTree.fromstring(xml).find("devices/interface/bandwidth")  # noqa: S314  # libvirt's own XML
    if bandwidth is None:
        return None, None
    found = [bandwidth.find(direction) for direction in ("inbound", "outbound")]
    return tuple(int(e.get("average") or 0) if e is not None else None for e in found)  # type: ignore[return-value]


def tap_of(name: str) -> str:
    target = ElementTree.fromstring(domain_xml(name)).find("devices/interface/target")  # noqa: S314
    assert target is not None and target.get("dev")
    return str(target.get("dev"))


def tc(*args: str) -> str:
    return subprocess.run(["tc", *args], capture_output=True, text=True, check=True, timeout=10).stdout


def shaped(name: str) -> tuple[str | None, str | None]:
    """(the HTB rate of the tap's class, the rate of its ingress policer), as tc prints them; None when absent."""
    tap = tap_of(name)
    qdiscs = tc("-s", "qdisc", "show", "dev", tap)
    classes = tc("class", "show", "dev", tap)
    policers = tc("filter", "show", "dev", tap, "parent", "ffff:") if "ingress" in qdiscs else ""
    rate = re.search(r"class htb \S+ .*?rate (\S+)", classes)
    police = re.search(r"police .*?rate (\S+)", policers)
    return (rate.group(1) if rate and "htb" in qdiscs else None), (police.group(1) if police else None)


def is_libvirt(driver: HypervisorDriver) -> bool:
    return not isinstance(driver, FakeDriver)


def test_a_guest_is_built_with_its_specs_cap(driver: HypervisorDriver, capped: str) -> None:
    driver.wait_ready(capped, BOOT)
    assert driver.bandwidth(capped) == 8
    if is_libvirt(driver):
        assert averages(domain_xml(capped)) == (1000, 1000) == averages(domain_xml(capped, inactive=True))
        assert shaped(capped) == ("8Mbit", "8Mbit")


def test_the_cap_changes_live_on_a_running_guest(driver: HypervisorDriver, capped: str) -> None:
    driver.set_bandwidth(capped, 20)
    driver.set_bandwidth(capped, 20)  # idempotent
    assert driver.state(capped) is GuestState.RUNNING and driver.bandwidth(capped) == 20
    if is_libvirt(driver):
        assert shaped(capped) == ("20Mbit", "20Mbit")
        assert averages(domain_xml(capped)) == (2500, 2500) == averages(domain_xml(capped, inactive=True))


def test_lifting_the_cap_removes_the_shaping(driver: HypervisorDriver, capped: str) -> None:
    driver.set_bandwidth(capped, None)
    assert driver.bandwidth(capped) is None
    if is_libvirt(driver):
        assert shaped(capped) == (None, None)
        assert averages(domain_xml(capped, inactive=True)) == (None, None)


def test_a_cap_set_while_off_holds_from_the_next_start(driver: HypervisorDriver, capped: str) -> None:
    driver.poweroff(capped)
    driver.set_bandwidth(capped, 8)
    assert driver.bandwidth(capped) == 8
    driver.start(capped)
    driver.wait_ready(capped, BOOT)
    assert driver.bandwidth(capped) == 8
    if is_libvirt(driver):
        assert shaped(capped) == ("8Mbit", "8Mbit")


def test_defining_or_resizing_gives_the_guest_its_specs_cap(driver: HypervisorDriver, capped: str) -> None:
    driver.define_guest(replace(CAPPED, bandwidth_mbit=16))  # the same guest, another cap: not a different guest
    assert driver.bandwidth(capped) == 16
    driver.resize_guest(replace(CAPPED, bandwidth_mbit=12))
    assert driver.bandwidth(capped) == 12
    if is_libvirt(driver):
        assert shaped(capped) == ("12Mbit", "12Mbit")


def test_the_cap_of_a_missing_guest_says_so(driver: HypervisorDriver) -> None:
    with pytest.raises(GuestNotFound):
        driver.set_bandwidth("contract-nobody", 8)
    with pytest.raises(GuestNotFound):
        driver.bandwidth("contract-nobody")
    with pytest.raises(ValueError, match="bandwidth"):
        replace(CAPPED, bandwidth_mbit=0)
    assert GuestFailed  # the node's refusal is a GuestFailed (see set_bandwidth's contract)
