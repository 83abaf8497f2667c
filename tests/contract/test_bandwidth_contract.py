"""The driver contract for a guest's NIC cap (set_bandwidth, bandwidth; GuestSpec.bandwidth_mbit), on the fake and
on libvirt alike. On libvirt the proof is the node's own: the tc qdiscs, classes and filters on the guest's tap
(libvirt's <bandwidth>: an HTB class at the cap for traffic to the guest, an ingress policer for traffic from it, and
the element in the live and persistent domain XML, kilobytes per second: 125 per Mbit/s; or, on a kernel without
sch_sfq and act_police, the driver's own tbf qdisc for traffic to the guest)."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from dataclasses import replace
from xml.etree import ElementTree

import pytest

from cloudlet.drivers.base import GuestNotFound, GuestSpec, GuestState, HypervisorDriver
from cloudlet.drivers.fake import FakeDriver
from cloudlet.drivers.libvirt import network
from tests.contract.conftest import IMAGE

BOOT = 120.0
CAPPED = GuestSpec(name="contract-capped", image=IMAGE, vcpus=1, memory_mib=256, disk_gib=1,
                   hostname="contract-capped", bandwidth_mbit=8)


@pytest.fixture(scope="module")
def capped(driver: HypervisorDriver) -> Iterator[str]:
    """A running guest built with an 8 Mbit/s cap."""
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
    """(the rate that holds what goes to the guest: the tap's HTB class, or its tbf qdisc where the driver shapes
    it; the rate of the tap's ingress policer, what the guest sends), as tc prints them; None when absent."""
    tap = tap_of(name)
    qdiscs = tc("-s", "qdisc", "show", "dev", tap)
    classes = tc("class", "show", "dev", tap)
    policers = tc("filter", "show", "dev", tap, "parent", "ffff:") if "ingress" in qdiscs else ""
    rate = re.search(r"class htb \S+ .*?rate (\S+)", classes) if "htb" in qdiscs else \
        re.search(r"qdisc tbf .*?rate (\S+)", qdiscs)
    police = re.search(r"police .*?rate (\S+)", policers)
    return (rate.group(1) if rate else None), (police.group(1) if police else None)


def held_at(rate: str) -> tuple[str, str | None]:
    """What shaped() shows of a guest capped at rate: both ways through libvirt's <bandwidth>, or, on a kernel
    without what that needs, what goes to the guest only (drivers/libvirt/network.py)."""
    return rate, rate if network.libvirt_can_cap() else None


def is_libvirt(driver: HypervisorDriver) -> bool:
    return not isinstance(driver, FakeDriver)


def test_a_guest_is_built_with_its_specs_cap(driver: HypervisorDriver, capped: str) -> None:
    driver.wait_ready(capped, BOOT)
    assert driver.bandwidth(capped) == 8
    if is_libvirt(driver):
        assert shaped(capped) == held_at("8Mbit")
        if network.libvirt_can_cap():
            assert averages(domain_xml(capped)) == (1000, 1000) == averages(domain_xml(capped, inactive=True))


def test_the_cap_changes_live_on_a_running_guest(driver: HypervisorDriver, capped: str) -> None:
    driver.set_bandwidth(capped, 20)
    driver.set_bandwidth(capped, 20)  # idempotent
    assert driver.state(capped) is GuestState.RUNNING and driver.bandwidth(capped) == 20
    if is_libvirt(driver):
        assert shaped(capped) == held_at("20Mbit")
        if network.libvirt_can_cap():
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
        assert shaped(capped) == held_at("8Mbit")


def test_defining_or_resizing_gives_the_guest_its_specs_cap(driver: HypervisorDriver, capped: str) -> None:
    driver.define_guest(replace(CAPPED, bandwidth_mbit=16))  # the same guest, another cap: not a different guest
    assert driver.bandwidth(capped) == 16
    driver.resize_guest(replace(CAPPED, bandwidth_mbit=12))
    assert driver.bandwidth(capped) == 12
    if is_libvirt(driver):
        assert shaped(capped) == held_at("12Mbit")


def test_the_cap_of_a_missing_guest_says_so(driver: HypervisorDriver) -> None:
    with pytest.raises(GuestNotFound):
        driver.set_bandwidth("contract-nobody", 8)
    with pytest.raises(GuestNotFound):
        driver.bandwidth("contract-nobody")
    with pytest.raises(ValueError, match="bandwidth"):
        replace(CAPPED, bandwidth_mbit=0)
