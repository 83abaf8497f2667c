"""A guest's link to the node's isolated network, and the names of its devices."""

from __future__ import annotations

import functools
import json
import os
import subprocess
from xml.etree import ElementTree

import libvirt

from cloudlet.drivers.base import GuestFailed, GuestSpec
from cloudlet.drivers.libvirt.host import NETWORK_NAME, translated

# libvirt takes rates in kilobytes per second (tc's "kbps": 1000 bytes), a burst in kilobytes
KBPS_PER_MBIT = 125
BURST_SECONDS = 0.1  # what a cap lets through at line rate before shaping: a tenth of a second of it
MIN_BURST_KB = 16  # below this a policed TCP flow loses packets well before its rate


def bandwidth_rates(mbit: int) -> tuple[int, int]:
    """(average kilobytes per second, burst kilobytes) of a cap of mbit Mbit/s."""
    average = mbit * KBPS_PER_MBIT
    return average, max(MIN_BURST_KB, int(average * BURST_SECONDS))


def bandwidth_xml(mbit: int | None) -> str:
    """The <bandwidth> element of a NIC capped at mbit each way ("inbound" is to the guest); "" for no cap.

    libvirt programs the tap with it: an HTB class for inbound, an ingress policer for outbound."""
    if mbit is None:
        return ""
    average, burst = bandwidth_rates(mbit)
    return (f"<bandwidth><inbound average='{average}' peak='{average}' burst='{burst}'/>"
            f"<outbound average='{average}' burst='{burst}'/></bandwidth>")


def bandwidth_parameters(mbit: int | None) -> dict[str, int]:
    """What virDomainSetInterfaceParameters takes to cap a NIC at mbit, or (all zero) to lift its cap."""
    average, burst = bandwidth_rates(mbit) if mbit is not None else (0, 0)
    return {libvirt.VIR_DOMAIN_BANDWIDTH_IN_AVERAGE: average, libvirt.VIR_DOMAIN_BANDWIDTH_IN_PEAK: average,
            libvirt.VIR_DOMAIN_BANDWIDTH_IN_BURST: burst, libvirt.VIR_DOMAIN_BANDWIDTH_OUT_AVERAGE: average,
            libvirt.VIR_DOMAIN_BANDWIDTH_OUT_BURST: burst}


def bandwidth_of(domain_xml: str) -> int | None:
    """The cap (Mbit/s) of a domain's NIC, from its inbound average; None when it has none."""
    inbound = ElementTree.fromstring(domain_xml).find("devices/interface/bandwidth/inbound")  # noqa: S314
    average = int(inbound.get("average") or 0) if inbound is not None else 0
    return max(1, round(average / KBPS_PER_MBIT)) if average else None


def mac_of(domain_xml: str) -> str | None:
    """The MAC address of a domain's NIC (how libvirt names the NIC of a guest that is off)."""
    mac = ElementTree.fromstring(domain_xml).find("devices/interface/mac")  # noqa: S314  # libvirt's own XML
    return None if mac is None else mac.get("address")


def interface_xml(spec: GuestSpec) -> str:
    """A virtio NIC on the isolated network, with the MAC the seed's network-config matches on, capped at
    spec.bandwidth_mbit."""
    return (f"<interface type='network'><source network='{NETWORK_NAME}'/><mac address='{spec.mac_address}'/>"
            f"<model type='virtio'/>{bandwidth_xml(spec.bandwidth_mbit)}</interface>")


def tap_device(domain: libvirt.virDomain) -> str | None:
    """The host-side device of a running guest's NIC (for counters); None when it is off."""
    with translated():
        xml = domain.XMLDesc(0)
    target = ElementTree.fromstring(xml).find("devices/interface/target")  # noqa: S314  # libvirt's own XML
    return None if target is None else target.get("dev")


# --- caps where libvirt's <bandwidth> cannot work -------------------------------------------------------------
#
# libvirt programs a <bandwidth> with an HTB class holding an sfq qdisc (to the guest) and a u32 filter with the
# police action (from it). A kernel built without sch_sfq or act_police (some cloud and microVM kernels, this
# project's CI machines among them) refuses those, and libvirt then refuses to start the guest. There the driver
# shapes what goes to the guest with a tbf qdisc on the tap, itself, and keeps the cap in the domain's metadata;
# what the guest sends is not capped (no tc classifier or action to police a tap's ingress with).

CAP_NS = "https://cloudlet.invalid/xmlns/cap/1"
TC_SECONDS = 10.0
TBF_LATENCY = "50ms"


def _tc(*args: str) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(["tc", *args], capture_output=True, text=True, timeout=TC_SECONDS,  # noqa: S603, S607
                              check=False)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise GuestFailed(f"tc did not answer: {error}") from error


@functools.cache
def libvirt_can_cap() -> bool:
    """Whether this kernel has what libvirt's <bandwidth> programs on a tap (sch_sfq, a u32 filter with
    act_police); probed once a process, on a scratch tap."""
    tap = f"clcap{os.getpid() % 100_000}"
    try:
        subprocess.run(["ip", "tuntap", "add", "dev", tap, "mode", "tap"], capture_output=True,  # noqa: S603, S607
                       timeout=TC_SECONDS, check=True)
    except (OSError, subprocess.SubprocessError):
        return True  # no scratch tap (not root?): leave it to libvirt, which says what fails
    try:
        sfq = _tc("qdisc", "add", "dev", tap, "root", "handle", "1:", "sfq").returncode == 0
        _tc("qdisc", "add", "dev", tap, "ingress")
        police = _tc("filter", "add", "dev", tap, "parent", "ffff:", "protocol", "all", "u32", "match", "u32", "0",
                     "0", "police", "rate", "8mbit", "burst", "100k", "drop", "flowid", ":1").returncode == 0
        return sfq and police
    finally:
        subprocess.run(["ip", "link", "del", tap], capture_output=True, timeout=TC_SECONDS,  # noqa: S603, S607
                       check=False)


def shape(tap: str, mbit: int | None) -> None:
    """Hold what goes to the guest through its tap at mbit Mbit/s (a tbf qdisc: packets over the rate wait,
    up to TBF_LATENCY, then drop), or lift the cap (None)."""
    if mbit is None:
        done = _tc("qdisc", "del", "dev", tap, "root")
        if done.returncode != 0 and "No such file" not in done.stderr and "Cannot delete" not in done.stderr:
            raise GuestFailed(f"tc could not lift the cap of {tap}: {done.stderr.strip()}")
        return
    _average, burst_kb = bandwidth_rates(mbit)
    done = _tc("qdisc", "replace", "dev", tap, "root", "tbf", "rate", f"{mbit}mbit", "burst", f"{burst_kb}kb",
               "latency", TBF_LATENCY)
    if done.returncode != 0:
        raise GuestFailed(f"tc could not cap {tap}: {done.stderr.strip()}")


def shaped(tap: str) -> int | None:
    """The cap (Mbit/s) a tbf qdisc holds the tap at; None when it has none."""
    done = _tc("-j", "qdisc", "show", "dev", tap, "root")
    if done.returncode != 0:
        raise GuestFailed(f"tc could not read {tap}: {done.stderr.strip()}")
    for qdisc in json.loads(done.stdout or "[]"):
        if qdisc.get("kind") == "tbf":
            return max(1, round(int(qdisc["options"]["rate"]) * 8 / 1_000_000))
    return None


def cap_metadata(mbit: int) -> str:
    """The metadata element that keeps a cap in the domain (virDomainSetMetadata adds CAP_NS)."""
    return f"<cap mbit='{mbit}'/>"


def cap_of_metadata(element: str | None) -> int | None:
    """The cap a metadata element keeps; None for none."""
    if not element:
        return None
    mbit = ElementTree.fromstring(element).get("mbit")  # noqa: S314  # what cap_metadata wrote
    return int(mbit) if mbit else None
