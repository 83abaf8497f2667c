"""The libvirt domain XML of a guest, and the Cloudlet metadata kept inside it."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path
from xml.etree import ElementTree
from xml.sax.saxutils import escape, quoteattr

from cloudlet.drivers.base import GuestSpec
from cloudlet.drivers.libvirt.host import POOL_NAME
from cloudlet.drivers.libvirt.network import interface_xml
from cloudlet.drivers.libvirt.storage import disk_volume, seed_volume

DOMAIN_PREFIX = "cloudlet-"
METADATA_NS = "https://cloudlet.invalid/xmlns/guest/1"


def domain_name(guest: str) -> str:
    """The libvirt name of a guest (prefixed, so other domains on the node are never touched)."""
    return f"{DOMAIN_PREFIX}{guest}"


def spec_digest(spec: GuestSpec) -> str:
    """A digest of what defines the guest; the root password is left out so no hash of it is kept."""
    fields = asdict(spec)
    fields.pop("root_password")
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
    console, VNC on 127.0.0.1 only, a balloon for memory statistics and a virtio RNG for entropy."""
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
    <graphics type='vnc' autoport='yes' listen='127.0.0.1'><listen type='address' address='127.0.0.1'/></graphics>
    <video><model type='vga'/></video>
    <memballoon model='virtio'><stats period='5'/></memballoon>
    <rng model='virtio'><backend model='random'>/dev/urandom</backend></rng>
  </devices>
</domain>
"""
