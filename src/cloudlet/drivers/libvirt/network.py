"""A guest's link to the node's isolated network, and the names of its devices."""

from __future__ import annotations

from xml.etree import ElementTree

import libvirt

from cloudlet.drivers.base import GuestSpec
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
