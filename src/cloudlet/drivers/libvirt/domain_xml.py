"""The libvirt domain XML of a guest, and the Cloudlet metadata kept inside it."""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from xml.etree import ElementTree
from xml.sax.saxutils import escape, quoteattr

from cloudlet.drivers.base import GuestFailed, GuestSpec, VncEndpoint
from cloudlet.drivers.libvirt.host import POOL_NAME
from cloudlet.drivers.libvirt.network import interface_xml
from cloudlet.drivers.libvirt.storage import disk_volume, seed_volume

DOMAIN_PREFIX = "cloudlet-"
METADATA_NS = "https://cloudlet.invalid/xmlns/guest/1"


def domain_name(guest: str) -> str:
    """The libvirt name of a guest (prefixed, so other domains on the node are never touched)."""
    return f"{DOMAIN_PREFIX}{guest}"


def spec_digest(spec: GuestSpec) -> str:
    """A digest of what defines the guest; the root password is left out so no hash of it is kept, and the NIC's
    cap, which set_bandwidth changes on a guest that stays the same guest."""
    fields = asdict(spec)
    fields.pop("root_password")
    fields.pop("bandwidth_mbit")
    fields["has_root_password"] = spec.root_password is not None
    return hashlib.sha256(json.dumps(fields, sort_keys=True, default=str).encode()).hexdigest()


def definition_digest(spec: GuestSpec) -> str:
    """A digest of what define_guest builds from a spec (disk and hardware); write_seed may not change it."""
    fields = {"name": spec.name, "image": spec.image, "vcpus": spec.vcpus, "memory_mib": spec.memory_mib,
              "disk_gib": spec.disk_gib}
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()


def _metadata_fields(spec: GuestSpec, *, seeded: bool, prefix: str) -> str:
    digest = spec_digest(spec)
    seed = f"<{prefix}seed>{digest}</{prefix}seed>" if seeded else ""
    return (f"<{prefix}name>{escape(spec.name)}</{prefix}name><{prefix}spec>{digest}</{prefix}spec>"
            f"<{prefix}definition>{definition_digest(spec)}</{prefix}definition>{seed}")


def metadata_xml(spec: GuestSpec, *, seeded: bool = False) -> str:
    """The Cloudlet element stored in the domain: the guest's name, its spec and definition digests and,
    once write_seed has stored a complete seed, the digest of the spec that seed was made from."""
    return (f"<cloudlet:guest xmlns:cloudlet='{METADATA_NS}'>"
            f"{_metadata_fields(spec, seeded=seeded, prefix='cloudlet:')}</cloudlet:guest>")


def metadata_update(spec: GuestSpec, *, seeded: bool) -> str:
    """The same element without a namespace, as virDomainSetMetadata takes it (libvirt adds METADATA_NS)."""
    return f"<guest>{_metadata_fields(spec, seeded=seeded, prefix='')}</guest>"


def _stored(domain_xml: str, field: str) -> str | None:
    root = ElementTree.fromstring(domain_xml)  # noqa: S314  # libvirt's own XML
    found = root.find(f"metadata/{{{METADATA_NS}}}guest/{{{METADATA_NS}}}{field}")
    return None if found is None else found.text


def stored_digest(domain_xml: str) -> str | None:
    """The spec digest kept in a domain's XML, if Cloudlet made it."""
    return _stored(domain_xml, "spec")


def stored_definition(domain_xml: str) -> str | None:
    """The definition digest kept in a domain's XML."""
    return _stored(domain_xml, "definition")


def stored_seed(domain_xml: str) -> str | None:
    """The digest of the spec whose seed is stored, or None when no complete seed was written."""
    return _stored(domain_xml, "seed")


def guest_xml(spec: GuestSpec, *, domain_type: str, console_log: Path) -> str:
    """The domain of a guest: its overlay and seed from the pool, the isolated NIC, a logged serial
    console, VNC on 127.0.0.1 only, the QEMU guest agent's channel (an image without the agent leaves it
    unused), a balloon for memory statistics and a virtio RNG for entropy; no USB
    controller, which nothing uses and which an emulated CPU spends time on while the guest boots.

    VNC gets a random password nobody is told: QEMU accepts a new password at run time (vnc_graphics) only
    from a VNC server started with password authentication, and until then nobody can connect."""
    cpu = "<cpu mode='host-passthrough'/>" if domain_type == "kvm" else ""
    return f"""<domain type='{domain_type}'>
  <name>{escape(domain_name(spec.name))}</name>
  <title>{escape(spec.hostname)}</title>
  <metadata>{metadata_xml(spec)}</metadata>
  <memory unit='MiB'>{spec.memory_mib}</memory>
  <currentMemory unit='MiB'>{spec.memory_mib}</currentMemory>
  <vcpu placement='static'>{spec.vcpus}</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type><boot dev='hd'/></os>
  <features><acpi/><apic/></features>
  {cpu}
  <clock offset='utc'/>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>restart</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <disk type='volume' device='disk'>
      <driver name='qemu' type='qcow2' discard='unmap'/>
      <source pool='{POOL_NAME}' volume={quoteattr(disk_volume(spec.name))}/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <disk type='volume' device='disk'>
      <driver name='qemu' type='raw'/>
      <source pool='{POOL_NAME}' volume={quoteattr(seed_volume(spec.name))}/>
      <target dev='vdb' bus='virtio'/>
      <readonly/>
    </disk>
    {interface_xml(spec)}
    <serial type='pty'>
      <log file={quoteattr(str(console_log))} append='on'/>
      <target port='0'/>
    </serial>
    <console type='pty'><target type='serial' port='0'/></console>
    <graphics type='vnc' autoport='yes' listen='127.0.0.1' passwd={quoteattr(secrets.token_urlsafe(6))}>
      <listen type='address' address='127.0.0.1'/>
    </graphics>
    <video><model type='vga'/></video>
    <controller type='usb' model='none'/>
    <channel type='unix'><target type='virtio' name='org.qemu.guest_agent.0'/></channel>
    <memballoon model='virtio'><stats period='5'/></memballoon>
    <rng model='virtio'><backend model='random'>/dev/urandom</backend></rng>
  </devices>
</domain>
"""


def hardware_of(domain_xml: str) -> tuple[int, int]:
    """(vCPUs, memory in KiB) of a domain definition, live or persistent."""
    root = ElementTree.fromstring(domain_xml)  # noqa: S314  # libvirt's own XML
    vcpu, memory = root.find("vcpu"), root.find("memory")
    if vcpu is None or memory is None or vcpu.text is None or memory.text is None:
        raise GuestFailed("the guest's definition has no vCPU count or memory size")
    return int(vcpu.text), _kib(int(memory.text), memory.get("unit", "KiB"))


_UNITS_KIB = {"b": 1 / 1024, "bytes": 1 / 1024, "k": 1, "kib": 1, "m": 1024, "mib": 1024, "g": 1024**2, "gib": 1024**2}


def _kib(amount: int, unit: str) -> int:
    return int(amount * _UNITS_KIB.get(unit.lower(), 1))


def resized_xml(inactive_xml: str, spec: GuestSpec, *, seeded: bool) -> str:
    """The persistent definition (read with its secrets, so the VNC password stays) with spec's vCPUs, memory
    and the Cloudlet metadata of spec: what defineXML takes to resize a guest at its next boot."""
    ElementTree.register_namespace("cloudlet", METADATA_NS)
    root = ElementTree.fromstring(inactive_xml)  # noqa: S314  # libvirt's own XML
    for tag in ("memory", "currentMemory"):
        element = root.find(tag)
        if element is None:
            element = ElementTree.SubElement(root, tag)
        element.set("unit", "KiB")
        element.text = str(spec.memory_mib * 1024)
    vcpu = root.find("vcpu")
    if vcpu is None:
        vcpu = ElementTree.SubElement(root, "vcpu")
    vcpu.attrib.pop("current", None)
    vcpu.text = str(spec.vcpus)
    metadata = root.find("metadata")
    if metadata is None:
        metadata = ElementTree.SubElement(root, "metadata")
    for old in metadata.findall(f"{{{METADATA_NS}}}guest"):
        metadata.remove(old)
    metadata.append(ElementTree.fromstring(metadata_xml(spec, seeded=seeded)))  # noqa: S314  # our own XML
    return ElementTree.tostring(root, encoding="unicode")


_WILDCARDS = {"0.0.0.0", "::", ""}  # noqa: S104  # read from a domain, never bound here


def vnc_graphics(live_xml: str, password: str, valid_until: datetime) -> tuple[str, VncEndpoint]:
    """The running domain's VNC <graphics> element with a new password that expires at valid_until (what
    updateDeviceFlags takes), and where that VNC server listens. GuestFailed when it has no VNC port."""
    root = ElementTree.fromstring(live_xml)  # noqa: S314  # libvirt's own XML
    graphics = root.find("devices/graphics[@type='vnc']")
    if graphics is None:
        raise GuestFailed("the guest has no VNC display")
    port = int(graphics.get("port") or -1)
    if port <= 0:
        raise GuestFailed("the guest's VNC server has no port (is the guest running?)")
    listen = graphics.get("listen") or ""
    graphics.set("passwd", password)
    # libvirt reads passwdValidTo as UTC
    graphics.set("passwdValidTo", valid_until.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S"))
    graphics.tail = None
    return (ElementTree.tostring(graphics, encoding="unicode"),
            VncEndpoint("127.0.0.1" if listen in _WILDCARDS else listen, port))


def vnc_password_config(inactive_xml: str, password: str) -> str | None:
    """The persistent definition's VNC <graphics> element with a password and no expiry (for a guest defined
    without one, so that its next start has password authentication); None when it has no VNC display."""
    root = ElementTree.fromstring(inactive_xml)  # noqa: S314  # libvirt's own XML
    graphics = root.find("devices/graphics[@type='vnc']")
    if graphics is None:
        return None
    graphics.set("passwd", password)
    graphics.attrib.pop("passwdValidTo", None)
    graphics.tail = None
    return ElementTree.tostring(graphics, encoding="unicode")
