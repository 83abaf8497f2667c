"""Volumes in the node's "cloudlet" pool: base images, per-guest qcow2 overlays and seed ISOs.

Names in the pool: "image-<name>.qcow2" for a base image, "guest-<name>.qcow2" for a guest's disk
and "guest-<name>-seed.iso" for its NoCloud seed (zero-padded to at least SEED_CAPACITY, so a new seed
can be written over the old one in place). Data moves through libvirt streams, so the same code serves a
local node and a remote one.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import time
from pathlib import Path
from xml.etree import ElementTree
from xml.sax.saxutils import escape

import libvirt

from cloudlet.drivers.base import GuestFailed, ImageInfo, RetryLater
from cloudlet.drivers.libvirt.host import POOL_NAME, translated

IMAGE_PREFIX, IMAGE_SUFFIX = "image-", ".qcow2"
QCOW2_MAGIC = b"QFI\xfb"
CHUNK = 1024 * 1024
# qemu-img converts and resizes whole disks (hours for a big one on slow storage); info only reads a header
QEMU_IMG_TIMEOUT_SECONDS = 6 * 3600
QEMU_IMG_INFO_TIMEOUT_SECONDS = 60
SEED_CAPACITY = 1024 * 1024  # a seed ISO is ~370 KiB; room to rewrite it in place


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


def _raw_volume_xml(name: str, capacity: int) -> str:
    return (f"<volume><name>{escape(name)}</name><capacity unit='bytes'>{capacity}</capacity>"
            "<target><format type='raw'/></target></volume>")


def _send(conn: libvirt.virConnect, volume: libvirt.virStorageVol, source: Path, length: int) -> None:
    """Write source's bytes at the start of volume, then zeros up to length (no stale tail of older data)."""
    stream = conn.newStream(0)
    volume.upload(stream, 0, length, 0)
    try:
        left = length
        with source.open("rb") as handle:
            while chunk := handle.read(min(CHUNK, left)):
                left -= len(chunk)
                while chunk:
                    chunk = chunk[stream.send(chunk):]
        while left > 0:
            chunk = bytes(min(CHUNK, left))
            left -= len(chunk)
            while chunk:
                chunk = chunk[stream.send(chunk):]
        stream.finish()
    except BaseException:
        with contextlib.suppress(libvirt.libvirtError):
            stream.abort()  # tells libvirtd to stop waiting for the rest
        raise


def upload(conn: libvirt.virConnect, storage: libvirt.virStoragePool, name: str, source: Path) -> None:
    """Create volume name with source's bytes; a partly written volume is removed on failure."""
    size = source.stat().st_size
    with translated():
        volume = storage.createXML(_raw_volume_xml(name, size), 0)
        try:
            _send(conn, volume, source, size)
        except BaseException:
            volume.delete(0)
            raise


def store_seed(conn: libvirt.virConnect, storage: libvirt.virStoragePool, guest: str, iso: Path, *,
               in_use: bool) -> None:
    """Write iso as guest's seed volume, replacing what it held; a write that fails removes the volume.

    An existing volume big enough is overwritten in place (zero-padded): a running guest's machine keeps
    the same file open, so it reads the new seed when it reboots. One too small is recreated bigger, which
    only a guest that is off (in_use False) allows: a running machine would go on reading the old file.
    """
    size = iso.stat().st_size
    capacity = max(SEED_CAPACITY, -(-size // SEED_CAPACITY) * SEED_CAPACITY)
    name = seed_volume(guest)
    with translated():
        volume = find(storage, name)
        if volume is not None:
            held, _ = volume_info(volume)
            if held >= size:
                capacity = held
            elif in_use:
                raise GuestFailed(f"the new seed ({size} bytes) does not fit the running guest's seed disk "
                                  f"({held} bytes); power the guest off and write the seed again")
            else:
                volume.delete(0)
                volume = None
        if volume is None:
            volume = storage.createXML(_raw_volume_xml(name, capacity), 0)
        try:
            _send(conn, volume, iso, capacity)
        except BaseException:
            volume.delete(0)
            raise


def qcow2_virtual_size(source: Path) -> int:
    """The virtual size of a qcow2 file; GuestFailed when it is not one."""
    try:
        with source.open("rb") as handle:
            magic = handle.read(4)
    except OSError as error:
        raise GuestFailed(f"{source} cannot be read: {error.strerror}") from error
    if magic != QCOW2_MAGIC:
        raise GuestFailed(f"{source} is not a qcow2 image")
    try:
        result = subprocess.run(["qemu-img", "info", "--output=json", "-f", "qcow2", str(source)],  # noqa: S603, S607
                                capture_output=True, text=True, check=False, timeout=QEMU_IMG_INFO_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired as error:
        raise GuestFailed(f"qemu-img info {source} did not answer within {QEMU_IMG_INFO_TIMEOUT_SECONDS} s") from error
    if result.returncode != 0:
        raise GuestFailed(f"{source} is not a usable qcow2 image: {result.stderr.strip()}")
    return int(json.loads(result.stdout)["virtual-size"])


def volume_info(volume: libvirt.virStorageVol) -> tuple[int, int]:
    """(capacity, allocation) of a volume in bytes."""
    with translated():
        _type, capacity, allocation = volume.info()
    return int(capacity), int(allocation)


REFRESH_SECONDS = 60.0  # how long a refresh waits for the pool's other volume jobs to end
REFRESH_POLL_SECONDS = 0.2


def refresh(storage: libvirt.virStoragePool) -> None:
    """Re-read the pool's volumes (their formats and sizes). libvirt refuses while another volume job runs in
    the pool (an upload or an overlay being made for another guest): that is tried again every
    REFRESH_POLL_SECONDS (libvirt tells no event when the job ends) for up to REFRESH_SECONDS, then RetryLater."""
    deadline = time.monotonic() + REFRESH_SECONDS
    while True:
        try:
            with translated():
                storage.refresh(0)
            return
        except RetryLater:
            if time.monotonic() >= deadline:
                raise
            time.sleep(REFRESH_POLL_SECONDS)


def images(storage: libvirt.virStoragePool) -> list[ImageInfo]:
    """The base images in the pool."""
    found = []
    refresh(storage)
    with translated():
        for name in sorted(storage.listVolumes()):
            if name.startswith(IMAGE_PREFIX) and name.endswith(IMAGE_SUFFIX):
                capacity, allocation = volume_info(storage.storageVolLookupByName(name))
                image = name.removeprefix(IMAGE_PREFIX).removesuffix(IMAGE_SUFFIX)
                found.append(ImageInfo(image, capacity, allocation))
    return found


def backing_path(volume: libvirt.virStorageVol) -> str | None:
    """The path of the image a qcow2 overlay is backed by, or None for a volume without one."""
    with translated():
        root = ElementTree.fromstring(volume.XMLDesc(0))  # noqa: S314  # libvirt's own XML
    found = root.find("backingStore/path")
    return None if found is None else found.text


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


def volume_path(storage: libvirt.virStoragePool, name: str) -> Path:
    """Where volume name lives on the node's filesystem; GuestFailed when it is missing."""
    with translated():
        volume = find(storage, name)
        if volume is None:
            raise GuestFailed(f"volume {name!r} is missing from the node's pool")
        return Path(volume.path())


def _qemu_img(*args: str) -> None:
    try:
        result = subprocess.run(["qemu-img", *args], capture_output=True, text=True, check=False,  # noqa: S603, S607
                                timeout=QEMU_IMG_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired as error:  # a hung disk (NFS, a dying drive) must not hold the action
        raise GuestFailed(f"qemu-img {args[0]} did not finish within {QEMU_IMG_TIMEOUT_SECONDS} s") from error
    if result.returncode != 0:
        raise GuestFailed(f"qemu-img {args[0]} failed: {result.stderr.strip()}")


def export_qcow2(disk: Path, destination: Path) -> None:
    """A compressed, self-contained qcow2 of disk and its backing chain at destination; no partial file on failure.

    Reads with -U (no lock): the caller has paused or stopped the machine that holds the disk open.
    """
    partial = destination.with_name(destination.name + ".partial")
    try:
        _qemu_img("convert", "-U", "-c", "-f", "qcow2", "-O", "qcow2", str(disk), str(partial))
        partial.replace(destination)
    finally:
        partial.unlink(missing_ok=True)


def import_qcow2(source: Path, disk: Path) -> None:
    """Write every block of the qcow2 source into the existing qcow2 disk (zeros too, so nothing of the
    disk's backing image shows through where the source is empty); the disk keeps its backing file and its
    internal snapshots."""
    _qemu_img("convert", "-n", "-f", "qcow2", "-O", "qcow2", str(source), str(disk))
