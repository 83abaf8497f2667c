"""A node's inventory, read through its driver (guests, images, capabilities) and, for the local node,
from this machine itself (system, network interfaces, the pool's filesystem).

The driver contract has no host-information call yet, so a remote node's system, network and pool
fields stay null until it does; nothing here guesses them.
"""

from __future__ import annotations

import os
import platform
import shutil
import socket
from pathlib import Path
from urllib.parse import urlsplit

from cloudlet.drivers.base import HypervisorDriver
from cloudlet.kit import clock
from cloudlet.kit.ids import is_number
from cloudlet.nodes.schemas import (
    DiskInventory,
    GuestInventory,
    NetworkInterface,
    NodeInventory,
    SystemInventory,
)

SYS_NET = Path("/sys/class/net")
MEMINFO = Path("/proc/meminfo")
CPUINFO = Path("/proc/cpuinfo")


def is_local(uri: str) -> bool:
    """Whether a libvirt URI is this machine's own libvirtd."""
    return urlsplit(uri).scheme == "qemu" and not urlsplit(uri).netloc


def total_memory_mib() -> int:
    """This machine's memory in MiB (0 when /proc/meminfo cannot be read)."""
    try:
        for line in MEMINFO.read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024
    except OSError:
        pass
    return 0


def _cpu_model() -> str | None:
    try:
        for line in CPUINFO.read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or None


def _os_name() -> str | None:
    try:
        return platform.freedesktop_os_release().get("PRETTY_NAME")
    except OSError:
        return platform.system() or None


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def _interfaces() -> list[NetworkInterface]:
    if not SYS_NET.is_dir():
        return []
    found = []
    for entry in sorted(SYS_NET.iterdir()):
        mtu = _read(entry / "mtu")
        found.append(NetworkInterface(name=entry.name, mac_address=_read(entry / "address"),
                                      mtu=int(mtu) if mtu and is_number(mtu) else None,
                                      state=_read(entry / "operstate")))
    return found


def existing(path: Path) -> Path:
    """path, or its nearest ancestor that exists (the filesystem a directory will be made on)."""
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _pool_disk(pool_dir: Path | None) -> list[DiskInventory]:
    if pool_dir is None:
        return []
    usage = shutil.disk_usage(existing(pool_dir))
    return [DiskInventory(name=str(pool_dir), kind="pool", size_bytes=usage.total, used_bytes=usage.used,
                          free_bytes=usage.free)]


def collect(driver: HypervisorDriver, uri: str, pool_dir: Path | None = None) -> NodeInventory:
    """Ask the driver (and, for the local node, this machine) what the node has now."""
    guests = [GuestInventory(name=g.name, state=g.state.value, vcpus=g.vcpus, memory_mib=g.memory_mib)
              for g in driver.list_guests()]
    images = [DiskInventory(name=i.name, kind="image", size_bytes=i.virtual_size_bytes,
                            used_bytes=i.allocation_bytes) for i in driver.list_images()]
    hw = driver.capabilities.hardware_virtualisation
    if is_local(uri):
        system = SystemInventory(hostname=socket.gethostname(), os=_os_name(), kernel=platform.release(),
                                 architecture=platform.machine(), cpu_model=_cpu_model(), cpu_count=os.cpu_count(),
                                 memory_mib=total_memory_mib() or None, hardware_virtualisation=hw, libvirt_uri=uri)
        network, disks = _interfaces(), _pool_disk(pool_dir) + images
    else:
        system = SystemInventory(hostname=urlsplit(uri).hostname, hardware_virtualisation=hw, libvirt_uri=uri)
        network, disks = [], images
    return NodeInventory(collected_at=clock.now(), system=system, network=network, disks=disks, guests=guests,
                         capabilities=driver.capabilities._asdict())
