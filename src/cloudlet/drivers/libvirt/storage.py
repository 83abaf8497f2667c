"""Volumes in the node's "cloudlet" pool: base images, per-guest qcow2 overlays and seed ISOs.

Names in the pool: "image-<name>.qcow2" for a base image, "guest-<name>.qcow2" for a guest's disk
and "guest-<name>-seed.iso" for its NoCloud seed. Data moves through libvirt streams, so the same
code serves a local node and a remote one.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from xml.sax.saxutils import escape

import libvirt

from cloudlet.drivers.base import GuestFailed, ImageInfo
from cloudlet.drivers.libvirt.host import POOL_NAME, translated

IMAGE_PREFIX, IMAGE_SUFFIX = "image-", ".qcow2"
QCOW2_MAGIC = b"QFI\xfb"
CHUNK = 1024 * 1024


def image_volume(name: str) -> str:
    """The pool volume that holds base image name."""
    return f"{IMAGE_PREFIX}{name}{IMAGE_SUFFIX}"


def disk_volume(guest: str) -> str:
    """The pool volume that holds a guest's disk overlay."""
    return f"guest-{guest}.qcow2"


def seed_volume(guest: str) -> str:
    """The pool volume that holds a guest's NoCloud seed."""
    return f"guest-{guest}-seed.iso"


def pool(conn: libvirt.virConnect) -> libvirt.virStoragePool:
    """The node's "cloudlet" pool."""
    with translated():
        return conn.storagePoolLookupByName(POOL_NAME)


def find(storage: libvirt.virStoragePool, name: str) -> libvirt.virStorageVol | None:
    """The volume called name, or None."""
    try:
        return storage.storageVolLookupByName(name)
    except libvirt.libvirtError as error:
        if error.get_error_code() == libvirt.VIR_ERR_NO_STORAGE_VOL:
            return None
        raise


def delete(storage: libvirt.virStoragePool, name: str) -> None:
    """Delete volume name; a missing one is fine."""
    with translated():
        volume = find(storage, name)
        if volume is not None:
            volume.delete(0)


def upload(conn: libvirt.virConnect, storage: libvirt.virStoragePool, name: str, source: Path) -> None:
    """Create volume name with source's bytes; a partly written volume is removed on failure."""
    size = source.stat().st_size
    xml = (f"<volume><name>{escape(name)}</name><capacity unit='bytes'>{size}</capacity>"
           "<target><format type='raw'/></target></volume>")
    with translated():
        volume = storage.createXML(xml, 0)
        try:
            stream = conn.newStream(0)
            volume.upload(stream, 0, size, 0)
            with source.open("rb") as handle:
                while chunk := handle.read(CHUNK):
                    while chunk:
                        chunk = chunk[stream.send(chunk):]
            stream.finish()
        except BaseException:
            volume.delete(0)
            raise


def qcow2_virtual_size(source: Path) -> int:
    """The virtual size of a qcow2 file; GuestFailed when it is not one."""
    with source.open("rb") as handle:
        if handle.read(4) != QCOW2_MAGIC:
            raise GuestFailed(f"{source} is not a qcow2 image")
    result = subprocess.run(["qemu-img", "info", "--output=json", "-f", "qcow2", str(source)],  # noqa: S603, S607
                            capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise GuestFailed(f"{source} is not a usable qcow2 image: {result.stderr.strip()}")
    return int(json.loads(result.stdout)["virtual-size"])


def volume_info(volume: libvirt.virStorageVol) -> tuple[int, int]:
    """(capacity, allocation) of a volume in bytes."""
    with translated():
        _type, capacity, allocation = volume.info()
    return int(capacity), int(allocation)


def images(storage: libvirt.virStoragePool) -> list[ImageInfo]:
    """The base images in the pool."""
    found = []
    with translated():
        storage.refresh(0)
        for name in sorted(storage.listVolumes()):
            if name.startswith(IMAGE_PREFIX) and name.endswith(IMAGE_SUFFIX):
                capacity, allocation = volume_info(storage.storageVolLookupByName(name))
                image = name.removeprefix(IMAGE_PREFIX).removesuffix(IMAGE_SUFFIX)
                found.append(ImageInfo(image, capacity, allocation))
    return found


def create_overlay(storage: libvirt.virStoragePool, guest: str, base: libvirt.virStorageVol, size: int) -> None:
    """A qcow2 overlay of base for guest, `size` bytes big (at least the base's own size)."""
    base_capacity, _ = volume_info(base)
    if size < base_capacity:
        raise GuestFailed(f"the disk ({size} bytes) is smaller than its image ({base_capacity} bytes)")
    with translated():
        xml = (f"<volume><name>{escape(disk_volume(guest))}</name><capacity unit='bytes'>{size}</capacity>"
               "<target><format type='qcow2'/></target>"
               f"<backingStore><path>{escape(base.path())}</path><format type='qcow2'/></backingStore></volume>")
        storage.createXML(xml, 0)
