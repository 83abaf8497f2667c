"""A guest's link to the node's isolated network, and the names of its devices."""

from __future__ import annotations

from xml.etree import ElementTree

import libvirt

from cloudlet.drivers.base import GuestSpec
from cloudlet.drivers.libvirt.host import NETWORK_NAME, translated


def interface_xml(spec: GuestSpec) -> str:
    """A virtio NIC on the isolated network, with the MAC the seed's network-config matches on."""
    return (f"<interface type='network'><source network='{NETWORK_NAME}'/><mac address='{spec.mac_address}'/>"
            "<model type='virtio'/></interface>")


def tap_device(domain: libvirt.virDomain) -> str | None:
    """The host-side device of a running guest's NIC (for counters); None when it is off."""
    with translated():
        xml = domain.XMLDesc(0)
    target = ElementTree.fromstring(xml).find("devices/interface/target")  # noqa: S314  # libvirt's own XML
    return None if target is None else target.get("dev")
