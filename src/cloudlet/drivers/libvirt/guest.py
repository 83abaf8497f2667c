"""LibvirtDriver: guests on one node through libvirtd (qemu:///system, qemu+ssh://, qemu+tls://).

The serial console log is read from the node's filesystem, so wait_ready and console_output need
the node to be this machine (or its console directory to be shared); everything else goes through
libvirt alone.
"""

from __future__ import annotations

import base64
import json
import posixpath
import secrets
import socket
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from xml.etree import ElementTree

import libvirt
import libvirt_qemu
import structlog

from cloudlet.drivers.base import (
    SNAPSHOT_PATTERN,
    VNC_PASSWORD_MAX,
    AddressFirewall,
    AddressTraffic,
    BootEvent,
    Capabilities,
    CommandRun,
    ConsoleOutput,
    FirewallHits,
    GuestFailed,
    GuestInfo,
    GuestLocation,
    GuestNotFound,
    GuestPath,
    GuestPathKind,
    GuestReady,
    GuestSpec,
    GuestState,
    GuestStats,
    ImageInfo,
    ImageNotFound,
    NodeFirewall,
    VncEndpoint,
    check_command,
    history_after_boot,
    history_output,
)
from cloudlet.drivers.libvirt import firewall, host, network, node_firewall, storage
from cloudlet.drivers.libvirt.console import LibvirtSerial
from cloudlet.drivers.libvirt.domain_xml import (
    DOMAIN_PREFIX,
    METADATA_NS,
    definition_digest,
    domain_name,
    guest_xml,
    hardware_of,
    metadata_update,
    resized_xml,
    spec_digest,
    stored_definition,
    stored_digest,
    stored_seed,
    vnc_graphics,
    vnc_password_config,
)
from cloudlet.drivers.seed import build_seed_iso, ready_in, seed_for

log = structlog.get_logger(__name__)

GIB = 1024**3
CONSOLE_TAIL = 4096  # bytes of console output quoted in a failure
LOCAL_HOSTS = {"", "localhost", "127.0.0.1", "::1"}
# a snapshot's description says whether it stands for memory and disk, or the disk alone: libvirt can only take
# an internal snapshot of a running guest with its memory, so a disk-only one of a running guest holds memory too
WITH_MEMORY, DISK_ONLY = "cloudlet: memory and disk", "cloudlet: disk"
RESIZE_SHUTDOWN_SECONDS = 60.0  # a reboot that applies new hardware waits this long for the guest to stop
AGENT_SECONDS = 5  # how long one guest agent command waits for its answer
AGENT_EXEC_SECONDS = 20.0  # how long a program run inside the guest through its agent may take
# qemu-ga drops a command whose JSON passes about 256 KiB (a 192 KiB write, base64, hangs until the timeout) and
# libvirt cannot carry an answer of 4 MiB; measured on Debian 12's qemu-ga 7.2 and libvirt 9.0
AGENT_WRITE_CHUNK = 96 * 1024
AGENT_READ_CHUNK = 1 << 20
AGENT_TRANSFER_SECONDS = 30  # for one chunk, on a busy TCG guest
COMMAND_KILL_SECONDS = 2  # how long a command run_in_guest ended (SIGTERM at its timeout) has before SIGKILL
COMMAND_GRACE_SECONDS = 10.0  # how long past a command's timeout this host waits for the guest to say it ended
TIMED_OUT = {124, 137}  # timeout(1)'s exit status when it sent SIGTERM, and when it then had to send SIGKILL
# what a command prints is cut inside the guest: libvirt fails to carry an agent's answer of a few MiB (6 MB of
# output: "Unable to encode message payload"; 8 MB: the agent is unusable until the guest restarts), measured on
# Debian 12's qemu-ga 7.2 and libvirt 9.0
COMMAND_OUTPUT_MAX = AGENT_READ_CHUNK
# $2 run by a shell of its own named sh, as dash names itself in its messages (its `exit` ends only that shell),
# stderr joined to stdout, the first $1 bytes of its output kept and the rest read and dropped, so that it ends as
# it would (not by SIGPIPE) with its own exit status
RUN_SCRIPT = """exec 2>&1 3>&1
status=$({ { /bin/sh -c "$2" sh 3>&- 4>&-; echo $? >&4; } 2>&1 | { head -c "$1" >&3; cat >/dev/null; }; } 4>&1)
exit "${status:-1}"
"""
# the real path, then what the path itself is and what the real path is (kind, size, mode, mtime), NUL-ended
LOCATE_SCRIPT = """real=$(realpath -m -- "$1") || exit 2
printf '%s\\0' "$real"
stat -c '%F\t%s\t%a\t%Y' -- "$1" 2>/dev/null | tr -d '\\n'
printf '\\0'
stat -c '%F\t%s\t%a\t%Y' -- "$real" 2>/dev/null | tr -d '\\n'
printf '\\0'
"""
# a directory's entries, each "name TAB kind TAB size TAB mode TAB mtime" and a NUL, by name, LIMIT of them
LIST_SCRIPT = """[ -d "$1" ] || { echo "$1 is not a directory" >&2; exit 1; }
find "$1" -mindepth 1 -maxdepth 1 -printf '%f\t%y\t%s\t%m\t%T@\\0' | LC_ALL=C sort -z | head -z -n LIMIT
"""


def _check_absolute(path: str) -> None:
    if not path.startswith("/") or "\0" in path:
        raise GuestFailed(f"{path!r} is not an absolute path")


_KINDS = {"regular file": GuestPathKind.FILE, "regular empty file": GuestPathKind.FILE,
          "directory": GuestPathKind.DIRECTORY, "symbolic link": GuestPathKind.SYMLINK}
_FIND_KINDS = {"f": GuestPathKind.FILE, "d": GuestPathKind.DIRECTORY, "l": GuestPathKind.SYMLINK}
# the agent is not (yet) there: no channel, nobody listening on it, the guest not running
_NO_AGENT = {libvirt.VIR_ERR_AGENT_UNRESPONSIVE, libvirt.VIR_ERR_ARGUMENT_UNSUPPORTED,
             libvirt.VIR_ERR_OPERATION_INVALID, libvirt.VIR_ERR_AGENT_UNSYNCED}

_STATES = {
    libvirt.VIR_DOMAIN_NOSTATE: GuestState.STARTING,
    libvirt.VIR_DOMAIN_RUNNING: GuestState.RUNNING,
    libvirt.VIR_DOMAIN_BLOCKED: GuestState.RUNNING,
    libvirt.VIR_DOMAIN_PAUSED: GuestState.PAUSED,
    libvirt.VIR_DOMAIN_SHUTDOWN: GuestState.STOPPING,
    libvirt.VIR_DOMAIN_SHUTOFF: GuestState.STOPPED,
    libvirt.VIR_DOMAIN_CRASHED: GuestState.CRASHED,
    libvirt.VIR_DOMAIN_PMSUSPENDED: GuestState.PAUSED,
}


def described(name: str, domain: libvirt.virDomain) -> GuestInfo:
    """A guest's power state, vCPUs and memory as libvirt reports them (libvirt's errors as they come)."""
    code, max_kib, _kib, vcpus, _cpu = domain.info()
    return GuestInfo(name, _STATES.get(code, GuestState.CRASHED), int(vcpus), int(max_kib) // 1024)


def listed(domain: libvirt.virDomain) -> GuestInfo | None:
    """The guest a domain of the node's listing is; None when Cloudlet did not make it or it has gone since."""
    try:
        name = domain.name()
        if not name.startswith(DOMAIN_PREFIX) or stored_digest(domain.XMLDesc(0)) is None:
            return None
        return described(name.removeprefix(DOMAIN_PREFIX), domain)
    except libvirt.libvirtError as error:
        if error.get_error_code() != libvirt.VIR_ERR_NO_DOMAIN:
            raise
        return None  # removed between the listing and this look (another caller destroyed it)


def is_local(uri: str) -> bool:
    """Whether the node at uri is this machine, whose loopback address (where guests' VNC listens) we share.

    A remote node (qemu+ssh://host/..., qemu+tls://host/...) keeps VNC on its own loopback: reaching it would
    need a tunnel per session, which Cloudlet does not make, so such nodes offer the serial console only.
    """
    return (urlsplit(uri).hostname or "") in LOCAL_HOSTS


class LibvirtDriver:
    """The hypervisor driver for one libvirt node."""

    def __init__(self, uri: str = host.LOCAL_URI, *, domain_type: str | None = None,
                 console_dir: Path | None = None, firewall_table: str = firewall.TABLE) -> None:
        self.uri = uri
        self.firewall_table = firewall_table  # the nftables table of the guests' firewalls (inet family)
        self._conn: libvirt.virConnect | None = None
        self._lock = threading.Lock()
        node_dir = host.pool_path(self._connection()).parent
        if domain_type is None:
            facts = host.read_facts(node_dir)
            domain_type = facts.domain_type if facts else "qemu"  # TCG always works, if slowly
        self.domain_type = domain_type
        self.console_dir = console_dir or node_dir / "consoles"
        self.capabilities = Capabilities(
            hardware_virtualisation=domain_type == "kvm", live_resize_memory=False, internal_snapshots=True,
            serial_console_log=True, vnc_console=is_local(uri), graceful_shutdown=True,
        )

    # -- plumbing

    def _connection(self) -> libvirt.virConnect:
        with self._lock:
            if self._conn is None or not self._conn.isAlive():
                self._conn = host.connect(self.uri)
            return self._conn

    def close(self) -> None:
        """Close the connection to libvirtd."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def _find(self, name: str) -> libvirt.virDomain | None:
        try:
            return self._connection().lookupByName(domain_name(name))
        except libvirt.libvirtError as error:
            if error.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                return None
            raise host.translate(error) from error

    def _domain(self, name: str) -> libvirt.virDomain:
        domain = self._find(name)
        if domain is None:
            raise GuestNotFound(name)
        return domain

    def _console_log(self, name: str) -> Path:
        return self.console_dir / f"{name}.log"

    def _console_history(self, name: str) -> Path:
        # a guest name has no dot (NAME_PATTERN), so this never is another guest's console log
        return self.console_dir / f"{name}.history.log"

    def _partial(self, name: str) -> Path:
        return self.console_dir / f"{name}.history.log.partial"  # the next history, written whole then renamed

    @staticmethod
    def _read(path: Path) -> str:
        return path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""

    def _fresh_console(self, name: str, event: BootEvent) -> None:
        # the finished boot's log joins the history first (a crash between the two steps repeats a boot in the
        # history rather than losing it); then qemu, which appends (O_APPEND), writes this boot's log from empty,
        # which makes "since the last start" easy to read
        self.console_dir.mkdir(parents=True, exist_ok=True)
        log, history = self._console_log(name), self._console_history(name)
        archived = history_after_boot(self._read(history), self._read(log), event, datetime.now(UTC))
        partial = self._partial(name)
        partial.write_text(archived, encoding="utf-8")
        partial.replace(history)
        log.write_bytes(b"")

    # -- images

    def apply_firewalls(self, firewalls: Sequence[AddressFirewall]) -> None:
        """Replace the nftables table firewall_table (`inet cloudlet`: drivers/libvirt/firewall.py). A remote
        node's kernel is out of reach from here: its own agent will apply them (issue 15), so this says so rather
        than pretend."""
        self._local_firewall()
        firewall.bridge_to_ip_hooks()
        firewall.apply(self._policed(firewalls), table=self.firewall_table)

    def firewalls_in_force(self, firewalls: Sequence[AddressFirewall]) -> bool:
        """Compare the mark of the node's table (its comment's digest and its rule count) with these firewalls'."""
        self._local_firewall()
        return firewall.live_mark(table=self.firewall_table) == firewall.mark(self._policed(firewalls))

    @staticmethod
    def _policed(firewalls: Sequence[AddressFirewall]) -> list[AddressFirewall]:
        """The firewalls as this node's table holds them: where libvirt's <bandwidth> caps a guest's NIC both
        ways, the table does not police what the guest sends (drivers/libvirt/network.py)."""
        if not network.libvirt_can_cap():
            return list(firewalls)
        return [replace(wall, out_mbit=None) for wall in firewalls]

    def firewall_hits(self) -> dict[str, FirewallHits]:
        """The counters of the node's table, by address."""
        self._local_firewall()
        return firewall.hits(table=self.firewall_table)

    def firewall_traffic(self) -> dict[str, AddressTraffic]:
        """What the node's table counted, by address (its visibility sets and counters)."""
        self._local_firewall()
        return firewall.traffic(table=self.firewall_table)

    def apply_node_firewall(self, firewall: NodeFirewall) -> None:
        """Replace the node's own `inet cloudlet_node` table (drivers/libvirt/node_firewall.py); a remote node's
        kernel is out of reach from here (its agent will write it: issue 15), so this says so rather than pretend."""
        self._local_firewall()
        node_firewall.apply(firewall)

    def node_firewall_in_force(self, firewall: NodeFirewall) -> bool:
        """Compare the mark of the node's own table with this firewall's (no table for one without rules)."""
        self._local_firewall()
        return node_firewall.in_force(firewall)

    def _local_firewall(self) -> None:
        if not is_local(self.uri):
            raise GuestFailed(f"firewalls of the remote node {self.uri} are applied by its node agent, which does "
                              "not exist yet")

    def serve_gateways(self, gateways: frozenset[str]) -> None:
        """Add the missing gateways to the isolated bridge of this host, as host addresses. A remote node's
        bridge is out of reach from here (its own agent will hold them: issue 15), so nothing changes for one."""
        if not is_local(self.uri):
            log.info("gateways not served: the node is remote", uri=self.uri, gateways=sorted(gateways))
            return
        added = host.hold_gateways(set(gateways))
        if added:
            log.info("gateways added to the guests' network", added=added)

    def import_image(self, name: str, source: Path) -> ImageInfo:
        """Copy a qcow2 file into the pool as base image name; see HypervisorDriver.import_image."""
        size = storage.qcow2_virtual_size(source)
        pool = storage.pool(self._connection())
        with host.translated():
            existing = storage.find(pool, storage.image_volume(name))
        if existing is not None:
            capacity, allocation = storage.volume_info(existing)
            if capacity == size:
                return ImageInfo(name, capacity, allocation)
            raise GuestFailed(f"an image named {name!r} already exists with a different size")
        storage.upload(self._connection(), pool, storage.image_volume(name), source)
        storage.refresh(pool)
        with host.translated():
            capacity, allocation = storage.volume_info(pool.storageVolLookupByName(storage.image_volume(name)))
        return ImageInfo(name, capacity, allocation)

    def list_images(self) -> list[ImageInfo]:
        """The base images in the pool."""
        return storage.images(storage.pool(self._connection()))

    def delete_image(self, name: str) -> None:
        """Remove a base image; a missing one is fine."""
        storage.delete(storage.pool(self._connection()), storage.image_volume(name))

    # -- guests

    def define_guest(self, spec: GuestSpec) -> None:
        """Make the overlay and the definition, stopped and seedless; see HypervisorDriver.define_guest."""
        domain = self._find(spec.name)
        if domain is not None:
            with host.translated():
                if stored_digest(domain.XMLDesc(0)) != spec_digest(spec):
                    raise GuestFailed(f"a different guest named {spec.name!r} already exists")
            if self.bandwidth(spec.name) != spec.bandwidth_mbit:
                self.set_bandwidth(spec.name, spec.bandwidth_mbit)
            return
        conn = self._connection()
        pool = storage.pool(conn)
        with host.translated():
            base = storage.find(pool, storage.image_volume(spec.image))
        if base is None:
            raise ImageNotFound(spec.image)
        try:
            # leftovers of an earlier attempt that died before cleaning up are rebuilt, not reused (an old seed
            # among them would be another guest's)
            storage.delete(pool, storage.disk_volume(spec.name))
            storage.delete(pool, storage.seed_volume(spec.name))
            storage.create_overlay(pool, spec.name, base, spec.disk_gib * GIB)
            defined = spec if network.libvirt_can_cap() else replace(spec, bandwidth_mbit=None)
            with host.translated():
                conn.defineXML(guest_xml(defined, domain_type=self.domain_type,
                                         console_log=self._console_log(spec.name)))
            if defined.bandwidth_mbit != spec.bandwidth_mbit:
                self.set_bandwidth(spec.name, spec.bandwidth_mbit)
        except BaseException:
            self.destroy_guest(spec.name)
            raise

    def write_seed(self, spec: GuestSpec) -> None:
        """Store spec's NoCloud seed as the guest's seed volume; see HypervisorDriver.write_seed."""
        domain = self._domain(spec.name)
        with host.translated():
            definition = stored_definition(domain.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
        if definition != definition_digest(spec):
            raise GuestFailed(f"guest {spec.name!r} was defined with another image, vCPU count, memory or disk; "
                              "a seed cannot change those")
        conn = self._connection()
        pool = storage.pool(conn)
        with tempfile.TemporaryDirectory(prefix="cloudlet-seed-") as tmp:
            iso = build_seed_iso(seed_for(spec), Path(tmp) / "seed.iso")
            # the mark of a complete seed comes off first: a write that dies half way leaves a guest that
            # refuses to start rather than one that boots on half a seed
            self._set_metadata(domain, spec, seeded=False)
            with host.translated():
                active = bool(domain.isActive())
            storage.store_seed(conn, pool, spec.name, iso, in_use=active)
            self._set_metadata(domain, spec, seeded=True)
        self._route(spec)

    def _addresses_file(self, name: str) -> Path:
        return self.console_dir / f"{name}.addresses"

    def _route(self, spec: GuestSpec) -> None:
        """Route the guest's addresses (and only them) from this host into the isolated network, from their
        gateways, which the bridge holds; kept in a file beside its console log so destroy_guest takes them away.
        A remote node's bridge is out of reach from here (its own agent will do it: issue 15)."""
        net = spec.network
        if net is None or not is_local(self.uri):
            return
        pairs = [(address.split("/")[0], gateway) for address, gateway in ((net.address, net.gateway),
                                                                            (net.address6, net.gateway6)) if address]
        host.hold_gateways({gateway for _address, gateway in pairs if gateway})
        for address, gateway in pairs:
            host.route_guest(address, gateway)
        self.console_dir.mkdir(parents=True, exist_ok=True)
        self._addresses_file(spec.name).write_text("".join(f"{address}\n" for address, _gateway in pairs))

    def _unroute(self, name: str) -> None:
        routed = self._addresses_file(name)
        if not routed.exists() or not is_local(self.uri):
            return
        for address in routed.read_text().split():
            host.unroute_guest(address)
        routed.unlink(missing_ok=True)

    def resize_guest(self, spec: GuestSpec) -> None:
        """Grow the overlay now (live while running) and redefine vCPUs and memory; see HypervisorDriver."""
        domain = self._domain(spec.name)
        conn = self._connection()
        pool = storage.pool(conn)
        with host.translated():
            disk = storage.find(pool, storage.disk_volume(spec.name))
            base = storage.find(pool, storage.image_volume(spec.image))
        if disk is None:
            raise GuestFailed(f"guest {spec.name!r} has no disk on this node")
        if base is None or storage.backing_path(disk) != base.path():
            raise GuestFailed(f"guest {spec.name!r} was not built from image {spec.image!r}; a resize cannot change it")
        capacity, _ = storage.volume_info(disk)
        wanted = spec.disk_gib * GIB
        if wanted < capacity:
            raise GuestFailed(f"the disk of guest {spec.name!r} is {capacity // GIB} GiB; a disk cannot shrink")
        with host.translated():
            # the secure flag keeps the VNC password in what is redefined
            inactive = domain.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE | libvirt.VIR_DOMAIN_XML_SECURE)
            conn.defineXML(resized_xml(inactive, spec, seeded=stored_seed(inactive) is not None))
            if wanted > capacity:
                if domain.isActive():  # qemu holds the image: it grows it, and the guest is told at once
                    domain.blockResize("vda", wanted, libvirt.VIR_DOMAIN_BLOCK_RESIZE_BYTES)
                else:
                    disk.resize(wanted, 0)
        if self.bandwidth(spec.name) != spec.bandwidth_mbit:
            self.set_bandwidth(spec.name, spec.bandwidth_mbit)

    def set_bandwidth(self, name: str, mbit: int | None) -> None:
        """Change the NIC's <bandwidth> through virDomainSetInterfaceParameters, in the persistent definition and,
        while the guest runs, on its tap (libvirt rewrites the tap's tc qdiscs); see HypervisorDriver. On a
        kernel without what libvirt's <bandwidth> needs, the cap is kept in the domain's metadata and shaped
        on the tap by the driver, to the guest only (drivers/libvirt/network.py)."""
        domain = self._domain(name)
        if not network.libvirt_can_cap():
            self._shape(domain, mbit, keep=True)
            return
        with host.translated():
            for _attempt in range(2):
                active = bool(domain.isActive())
                device = network.tap_device(domain) if active else network.mac_of(
                    domain.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
                if device is None:
                    raise GuestFailed(f"guest {name!r} has no network interface to cap")
                flags = libvirt.VIR_DOMAIN_AFFECT_CONFIG | (libvirt.VIR_DOMAIN_AFFECT_LIVE if active else 0)
                try:
                    domain.setInterfaceParameters(device, network.bandwidth_parameters(mbit), flags)
                    return
                except libvirt.libvirtError as error:
                    # the guest stopped or started since isActive(): ask again with what it is now
                    if error.get_error_code() != libvirt.VIR_ERR_OPERATION_INVALID or bool(domain.isActive()) == active:
                        raise
            raise GuestFailed(f"guest {name!r} kept changing power state while its bandwidth was set")

    def bandwidth(self, name: str) -> int | None:
        """The cap of the NIC's <bandwidth>: the live definition's while the guest runs, else the persistent one's."""
        domain = self._domain(name)
        with host.translated():
            if network.libvirt_can_cap():
                return network.bandwidth_of(domain.XMLDesc(0))
            tap = network.tap_device(domain) if domain.isActive() else None
            return network.shaped(tap) if tap is not None else self._kept_cap(domain)

    @staticmethod
    def _kept_cap(domain: libvirt.virDomain) -> int | None:
        with host.translated():
            try:
                return network.cap_of_metadata(domain.metadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, network.CAP_NS,
                                                                libvirt.VIR_DOMAIN_AFFECT_CONFIG))
            except libvirt.libvirtError as error:
                if error.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN_METADATA:
                    return None
                raise

    def _shape(self, domain: libvirt.virDomain, mbit: int | None, *, keep: bool) -> None:
        """Shape the running guest's tap at mbit (and, with keep, keep mbit in the definition for its starts)."""
        with host.translated():
            if keep:
                element = network.cap_metadata(mbit) if mbit is not None else None
                domain.setMetadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, element, "cloudletcap" if element else None,
                                   network.CAP_NS, libvirt.VIR_DOMAIN_AFFECT_CONFIG)
            tap = network.tap_device(domain) if domain.isActive() else None
        if tap is not None:
            network.shape(tap, mbit)

    def _hardware_pending(self, domain: libvirt.virDomain) -> bool:
        # a resize changes the persistent definition only; the running machine keeps what it started with
        with host.translated():
            live = hardware_of(domain.XMLDesc(0))
            return live != hardware_of(domain.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))

    def _set_metadata(self, domain: libvirt.virDomain, spec: GuestSpec, *, seeded: bool) -> None:
        element = metadata_update(spec, seeded=seeded)
        with host.translated():
            for _attempt in range(2):
                # a running domain has a live definition beside the persistent one; both must agree
                flags = libvirt.VIR_DOMAIN_AFFECT_CONFIG
                if domain.isActive():
                    flags |= libvirt.VIR_DOMAIN_AFFECT_LIVE
                try:
                    domain.setMetadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, element, "cloudlet", METADATA_NS, flags)
                    domain.setMetadata(libvirt.VIR_DOMAIN_METADATA_TITLE, spec.hostname, None, None, flags)
                    return
                except libvirt.libvirtError as error:
                    # the guest stopped since isActive(): its live definition is gone, so write the persistent one
                    if error.get_error_code() != libvirt.VIR_ERR_OPERATION_INVALID or domain.isActive():
                        raise
            raise GuestFailed(f"guest {spec.name!r} kept changing power state while its seed was written")

    def create_guest(self, spec: GuestSpec) -> None:
        """define_guest, write_seed and start; see HypervisorDriver.create_guest for idempotency and cleanup."""
        existed = self._find(spec.name) is not None
        self.define_guest(spec)  # cleans up after itself
        try:
            domain = self._domain(spec.name)
            with host.translated():
                if domain.isActive():
                    return
            self.write_seed(spec)
            self.start(spec.name)
        except BaseException:
            if not existed:
                self.destroy_guest(spec.name)
            raise

    def hardware(self, name: str) -> GuestInfo:
        """vCPUs, memory and power state as libvirt reports them."""
        domain = self._domain(name)
        with host.translated():
            return described(name, domain)

    def _power_on(self, name: str, domain: libvirt.virDomain, event: BootEvent = "started") -> None:
        with host.translated():
            if stored_seed(domain.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)) is None:
                raise GuestFailed(f"no seed written for guest {name!r}: write_seed must succeed before it starts")
            self._fresh_console(name, event)
            domain.create()
        if not network.libvirt_can_cap() and (mbit := self._kept_cap(domain)) is not None:
            self._shape(domain, mbit, keep=False)  # a new QEMU process has a new tap

    def wait_ready(self, name: str, timeout: float) -> GuestReady:
        """Wait for the CLOUDLET_READY line on the serial console; see HypervisorDriver.wait_ready."""
        deadline = time.monotonic() + timeout
        log = self._console_log(name)
        while True:
            domain = self._domain(name)
            with host.translated():
                active = domain.isActive()
            text = log.read_text(errors="replace") if log.exists() else ""
            if not active:  # what the console holds is from a run that ended
                raise GuestFailed(f"guest {name} is not running; console:\n{text[-CONSOLE_TAIL:]}")
            ready = ready_in(text)
            if ready is not None:
                return ready
            if time.monotonic() > deadline:
                raise GuestFailed(f"guest {name} was not ready within {timeout:.0f}s; console:\n{text[-CONSOLE_TAIL:]}")
            time.sleep(0.1)

    def agent_ping(self, name: str) -> bool:
        """guest-ping through libvirt; an agent that is not there (yet) is False, not an error."""
        domain = self._domain(name)
        try:
            libvirt_qemu.qemuAgentCommand(domain, '{"execute": "guest-ping"}', AGENT_SECONDS, 0)
        except libvirt.libvirtError as error:
            if error.get_error_code() in _NO_AGENT:
                return False
            raise host.translate(error) from error
        return True

    def set_password(self, name: str, user: str, password: str) -> None:
        """virDomainSetUserPassword: the guest agent's guest-set-user-password, the password given in clear over
        the agent's channel and hashed inside the guest."""
        domain = self._domain(name)
        try:
            domain.setUserPassword(user, password, 0)
        except libvirt.libvirtError as error:
            if error.get_error_code() in _NO_AGENT:
                raise GuestFailed(f"the guest agent of {name} did not answer: {error.get_error_message()}") from None
            raise host.translate(error) from None

    def _agent(self, domain: libvirt.virDomain, execute: str, arguments: dict[str, object],
               seconds: int = AGENT_SECONDS) -> Any:
        """One guest agent command's answer; GuestFailed when the agent is not there or refuses."""
        request = json.dumps({"execute": execute, "arguments": arguments})
        try:
            answer = libvirt_qemu.qemuAgentCommand(domain, request, seconds, 0)
        except libvirt.libvirtError as error:
            if error.get_error_code() in _NO_AGENT | {libvirt.VIR_ERR_INTERNAL_ERROR}:  # the agent's own refusals
                raise GuestFailed(f"the guest agent did not do {execute}: {error.get_error_message()}") from None
            raise host.translate(error) from None
        return json.loads(answer)["return"]

    def _agent_exec(self, domain: libvirt.virDomain, argv: list[str], timeout: float) -> dict[str, Any] | None:
        """Run a program inside the guest through its agent (guest-exec, output captured) and wait for it to end:
        its guest-exec-status, or None when it has not ended within timeout seconds."""
        started = self._agent(domain, "guest-exec", {"path": argv[0], "arg": argv[1:], "capture-output": True})
        deadline = time.monotonic() + timeout
        while True:
            status: dict[str, Any] = self._agent(domain, "guest-exec-status", {"pid": started["pid"]})
            if status.get("exited"):
                return status
            if time.monotonic() > deadline:
                return None
            time.sleep(0.05)

    def _agent_run(self, domain: libvirt.virDomain, argv: list[str], timeout: float = AGENT_EXEC_SECONDS) -> bytes:
        """Run a program inside the guest through its agent (guest-exec), wait for it to succeed, and give its
        output; GuestFailed with what it wrote to stderr when it fails."""
        status = self._agent_exec(domain, argv, timeout)
        if status is None:
            raise GuestFailed(f"{argv[0]} did not finish inside the guest within {timeout:g} s")
        code = int(status.get("exitcode", -1))
        if code != 0:
            error = base64.b64decode(status.get("err-data", "")).decode(errors="replace").strip()
            raise GuestFailed(f"inside the guest: {error[-500:] or f'{argv[0]} exited with {code}'}")
        return base64.b64decode(status.get("out-data", ""))

    def _shell(self, name: str, script: str, *paths: str) -> bytes:
        """Run a fixed shell script inside the running guest with absolute paths as its positional parameters."""
        for path in paths:
            _check_absolute(path)
        return self._agent_run(self._domain(name), ["/bin/sh", "-c", script, "sh", *paths])

    def run_in_guest(self, name: str, command: str, timeout: float, output_cap: int) -> CommandRun:
        """guest-exec of timeout(1) around /bin/sh -c (RUN_SCRIPT) with stderr sent to stdout, so that the guest itself
        kills the command at its timeout; this host stops waiting COMMAND_GRACE_SECONDS later. Output past
        COMMAND_OUTPUT_MAX is cut whatever the cap (truncated says so). See HypervisorDriver."""
        check_command(command, timeout, output_cap)
        domain = self._domain(name)
        room = min(output_cap, COMMAND_OUTPUT_MAX)
        argv = ["/usr/bin/timeout", "-k", str(COMMAND_KILL_SECONDS), f"{timeout:g}", "/bin/sh", "-c", RUN_SCRIPT,
                "sh", str(room + 1), command]  # a byte past the room says there was more
        began = time.monotonic()
        status = self._agent_exec(domain, argv, timeout + COMMAND_GRACE_SECONDS)
        seconds = time.monotonic() - began
        if status is None:
            return CommandRun(None, b"", False, True, seconds)
        # err-data holds what timeout(1) itself said (it cannot run sh, say); the command's stderr is in out-data
        output = b"".join(base64.b64decode(status.get(key, "")) for key in ("out-data", "err-data"))
        # a process ended by a signal has no exit code: reported as a shell would, 128 + the signal
        code = int(status["exitcode"]) if "exitcode" in status else 128 + int(status.get("signal", 0))
        timed_out = code in TIMED_OUT
        return CommandRun(None if timed_out else code, output[:room], len(output) > room, timed_out, seconds)

    @contextmanager
    def _agent_file(self, domain: libvirt.virDomain, path: str, mode: str) -> Iterator[int]:
        """A file opened inside the guest by its agent, closed after; a failed close does not hide what failed."""
        handle = int(self._agent(domain, "guest-file-open", {"path": path, "mode": mode}))
        try:
            yield handle
        except BaseException:
            with suppress(GuestFailed):
                self._agent(domain, "guest-file-close", {"handle": handle})
            raise
        self._agent(domain, "guest-file-close", {"handle": handle})

    def write_guest_file(self, name: str, path: str, data: bytes, mode: int) -> None:
        """guest-file-open/write/close into a file beside path, then chmod, chown and an atomic mv."""
        _check_absolute(path)
        domain = self._domain(name)
        aside = f"{path}.cloudlet-new"
        self._agent_run(domain, ["/bin/mkdir", "-p", posixpath.dirname(path)])
        with self._agent_file(domain, aside, "w") as handle:
            for start in range(0, len(data), AGENT_WRITE_CHUNK):
                chunk = base64.b64encode(data[start:start + AGENT_WRITE_CHUNK]).decode()
                self._agent(domain, "guest-file-write", {"handle": handle, "buf-b64": chunk}, AGENT_TRANSFER_SECONDS)
        owner = 'chown --reference="$3" "$2" 2>/dev/null || chown 0:0 "$2"'  # the replaced file's owner, else root
        self._agent_run(domain, ["/bin/sh", "-c", f'chmod "$1" "$2" && {{ {owner}; }} && mv -f "$2" "$3"', "sh",
                                 f"{mode:o}", aside, path])

    def locate_guest_path(self, name: str, path: str) -> GuestLocation:
        """realpath -m, then stat of the path itself and of where it leads (empty: nothing there)."""
        out = self._shell(name, LOCATE_SCRIPT, path)
        real, itself, found = out.decode(errors="surrogateescape").split("\0")[:3]

        def entry(facts: str, at: str) -> GuestPath | None:
            if not facts:
                return None
            kind, size, mode, modified = facts.split("\t")
            return GuestPath(posixpath.basename(at) or "/", _KINDS.get(kind, GuestPathKind.OTHER), int(size),
                             int(mode, 8), datetime.fromtimestamp(int(modified), UTC))

        return GuestLocation(real, entry(found, real), entry(itself, path))

    def list_guest_dir(self, name: str, path: str, limit: int) -> tuple[list[GuestPath], bool]:
        """find -maxdepth 1 with one NUL-ended record per entry, sorted by name, limit + 1 of them."""
        out = self._shell(name, LIST_SCRIPT.replace("LIMIT", str(limit + 1)), path)
        entries = []
        for record in out.decode(errors="surrogateescape").split("\0"):
            if not record:
                continue
            entry, kind, size, mode, modified = record.rsplit("\t", 4)
            entries.append(GuestPath(entry, _FIND_KINDS.get(kind, GuestPathKind.OTHER), int(size), int(mode, 8),
                                     datetime.fromtimestamp(float(modified), UTC)))
        return entries[:limit], len(entries) > limit

    def read_guest_file(self, name: str, path: str, limit: int) -> bytes:
        """guest-file-open/read/close, a megabyte at a time, never past limit + 1 bytes."""
        _check_absolute(path)
        domain = self._domain(name)
        chunks: list[bytes] = []
        taken = 0
        with self._agent_file(domain, path, "r") as handle:
            while taken <= limit:
                read = self._agent(domain, "guest-file-read", {"handle": handle, "count": AGENT_READ_CHUNK},
                                   AGENT_TRANSFER_SECONDS)
                chunk = base64.b64decode(read.get("buf-b64", ""))
                chunks.append(chunk)
                taken += len(chunk)
                if read.get("eof") or not chunk:
                    break
        if taken > limit:
            raise GuestFailed(f"{path} is larger than {limit} bytes")
        return b"".join(chunks)

    def make_guest_dir(self, name: str, path: str) -> None:
        """mkdir -p."""
        self._shell(name, 'mkdir -p -- "$1"', path)

    def move_guest_path(self, name: str, source: str, target: str) -> None:
        """mv -T: the target is never a directory the source moves into."""
        self._shell(name, 'mv -T -- "$1" "$2"', source, target)

    def remove_guest_path(self, name: str, path: str) -> None:
        """rm -rf."""
        self._shell(name, 'rm -rf -- "$1"', path)

    def ssh_banner(self, name: str, address: str, timeout: float) -> str | None:
        """Connect from this host to the guest's port 22 until its SSH server greets; a remote node's guests
        are not on this host's bridge (its own agent will check them: issue 15)."""
        self._domain(name)
        if not is_local(self.uri):
            return None
        if not host.routed_to_bridge(address):  # never aimed anywhere but the guests' isolated network
            raise GuestFailed(f"{address} is not routed to the guests' network on this node")
        deadline = time.monotonic() + timeout
        last = "no answer"
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise GuestFailed(f"nothing answered on {address} port 22 within {timeout:g} s ({last})")
            try:
                with socket.create_connection((address, 22), timeout=min(left, 5.0)) as connection:
                    greeting = connection.recv(255).decode("ascii", "replace").strip()
                if greeting.startswith("SSH-"):
                    return greeting
                last = f"greeted with {greeting[:40]!r}"
            except OSError as error:
                last = f"{type(error).__name__}: {error}"
            time.sleep(min(0.5, max(0.0, deadline - time.monotonic())))

    def state(self, name: str) -> GuestState:
        """The guest's power state now."""
        domain = self._domain(name)
        with host.translated():
            code, _reason = domain.state(0)
        return _STATES.get(code, GuestState.CRASHED)

    def start(self, name: str) -> None:
        """Power on; a running guest is left alone."""
        domain = self._domain(name)
        with host.translated():
            if not domain.isActive():
                self._power_on(name, domain)

    def shutdown(self, name: str, timeout: float = 60.0) -> None:
        """ACPI shutdown, then power off after timeout; a stopped guest is fine."""
        domain = self._domain(name)
        deadline = time.monotonic() + timeout
        with host.translated():
            if not domain.isActive():
                return
            try:
                domain.shutdown()
            except libvirt.libvirtError:
                if not domain.isActive():
                    return
                deadline = 0.0  # the guest cannot take an ACPI request (paused, say): its power is cut
            while domain.isActive() and time.monotonic() < deadline:
                time.sleep(0.2)
        self.poweroff(name)

    def reboot(self, name: str) -> None:
        """ACPI restart (a stopped guest is started instead)."""
        domain = self._domain(name)
        with host.translated():
            if not domain.isActive():
                self._power_on(name, domain)
                return
        if self._hardware_pending(domain):  # an ACPI reboot keeps the same machine: it must power off and on
            self.shutdown(name, RESIZE_SHUTDOWN_SECONDS)
            with host.translated():
                self._power_on(name, domain, "rebooted")
            return
        with host.translated():
            self._fresh_console(name, "rebooted")
            domain.reboot(libvirt.VIR_DOMAIN_REBOOT_ACPI_POWER_BTN)

    def poweroff(self, name: str) -> None:
        """Cut the power at once; a stopped guest is fine."""
        domain = self._domain(name)
        try:
            domain.destroy()
        except libvirt.libvirtError as error:
            if error.get_error_code() != libvirt.VIR_ERR_OPERATION_INVALID:  # "domain is not running"
                raise host.translate(error) from error

    def console_output(self, name: str) -> ConsoleOutput:
        """The serial console since the guest last started."""
        self._domain(name)
        text = self._read(self._console_log(name))
        return ConsoleOutput(text=text, lines=text.splitlines())

    def console_history(self, name: str) -> ConsoleOutput:
        """The history file (the boots before the last, bounded) and then the console log; see HypervisorDriver."""
        self._domain(name)
        # the log first: a start between the two reads then shows the boot that ended twice, rather than not at all
        current = self._read(self._console_log(name))
        return history_output(self._read(self._console_history(name)), current)

    def clear_console(self, name: str) -> None:
        """Remove the history file and empty the console log (qemu keeps appending to it); see HypervisorDriver."""
        self._domain(name)
        self._console_history(name).unlink(missing_ok=True)
        self._partial(name).unlink(missing_ok=True)
        log = self._console_log(name)
        if log.exists():
            log.write_bytes(b"")

    def vnc_console(self, name: str, password: str, valid_until: datetime) -> VncEndpoint:
        """Set the running guest's VNC password (live only) and say where it listens; see HypervisorDriver."""
        if not 1 <= len(password) <= VNC_PASSWORD_MAX:
            raise GuestFailed(f"a VNC password is 1 to {VNC_PASSWORD_MAX} characters")
        if not self.capabilities.vnc_console:
            raise GuestFailed(f"guests on {self.uri} listen for VNC on the node's loopback address only, which this "
                              "control plane cannot reach")
        domain = self._domain(name)
        with host.translated():
            if not domain.isActive():
                raise GuestFailed(f"guest {name} is not running: its VNC server runs only while it does")
            graphics, endpoint = vnc_graphics(domain.XMLDesc(0), password, valid_until)
            try:
                # the live definition only: a power cycle brings back the persistent random password
                domain.updateDeviceFlags(graphics, libvirt.VIR_DOMAIN_AFFECT_LIVE)
            except libvirt.libvirtError as error:
                if "set_password" not in str(error) and "Could not set password" not in str(error):
                    raise
                # defined without a VNC password (before Cloudlet set one, or redefined without it): give the
                # persistent definition one, so the next start has password authentication
                persistent = domain.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE | libvirt.VIR_DOMAIN_XML_SECURE)
                fixed = vnc_password_config(persistent, secrets.token_urlsafe(6))
                if fixed is not None:
                    domain.updateDeviceFlags(fixed, libvirt.VIR_DOMAIN_AFFECT_CONFIG)
                raise GuestFailed(f"guest {name}'s VNC server was started without password authentication; "
                                  "power it off and on again to use the console") from error
        return endpoint

    def open_serial(self, name: str) -> LibvirtSerial:
        """Attach to the running guest's serial console on a connection of its own; see HypervisorDriver."""
        self._domain(name)  # GuestNotFound before a connection is opened for nothing
        return LibvirtSerial.open(self.uri, name)

    def stats(self, name: str) -> GuestStats:
        """CPU, memory, disk and network counters."""
        domain = self._domain(name)
        pool = storage.pool(self._connection())
        with host.translated():
            _state, max_kib, _kib, vcpus, cpu_time = domain.info()
            disk = storage.find(pool, storage.disk_volume(name))
            capacity, allocation = storage.volume_info(disk) if disk is not None else (0, 0)
            block = (0, 0, 0, 0)
            nic = (0, 0, 0, 0, 0, 0, 0, 0)
            used_mib = None
            if domain.isActive():
                rd_req, rd_bytes, wr_req, wr_bytes, _errors = domain.blockStats("vda")
                block = (rd_req, rd_bytes, wr_req, wr_bytes)
                tap = network.tap_device(domain)
                if tap:
                    nic = domain.interfaceStats(tap)
                memory = domain.memoryStats()
                if "available" in memory and "unused" in memory:
                    used_mib = (memory["available"] - memory["unused"]) // 1024
        return GuestStats(
            sampled_at=datetime.now(UTC), cpu_time_ns=int(cpu_time), vcpus=int(vcpus), memory_mib=int(max_kib) // 1024,
            memory_used_mib=used_mib, disk_read_requests=int(block[0]), disk_read_bytes=int(block[1]),
            disk_write_requests=int(block[2]), disk_write_bytes=int(block[3]), disk_capacity_bytes=capacity,
            disk_allocation_bytes=allocation, net_rx_bytes=int(nic[0]), net_rx_packets=int(nic[1]),
            net_tx_bytes=int(nic[4]), net_tx_packets=int(nic[5]),
        )

    def list_guests(self) -> list[GuestInfo]:
        """The guests Cloudlet made on this node."""
        with host.translated():
            found = [guest for domain in self._connection().listAllDomains(0) if (guest := listed(domain))]
        return sorted(found, key=lambda guest: guest.name)

    def destroy_guest(self, name: str) -> None:
        """Remove the guest, its overlay, its seed, its console log and history; whatever is missing is fine."""
        domain = self._find(name)
        if domain is not None:
            with host.translated():
                try:
                    domain.destroy()
                except libvirt.libvirtError as error:
                    if error.get_error_code() != libvirt.VIR_ERR_OPERATION_INVALID:
                        raise
                try:
                    domain.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE
                                         | libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA
                                         | libvirt.VIR_DOMAIN_UNDEFINE_NVRAM)
                except libvirt.libvirtError as error:
                    if error.get_error_code() != libvirt.VIR_ERR_NO_DOMAIN:
                        raise
        pool = storage.pool(self._connection())
        storage.delete(pool, storage.disk_volume(name))
        storage.delete(pool, storage.seed_volume(name))
        self._unroute(name)
        self._console_log(name).unlink(missing_ok=True)
        self._console_history(name).unlink(missing_ok=True)
        self._partial(name).unlink(missing_ok=True)

    # -- snapshots and disk copies

    def _snapshot(self, domain: libvirt.virDomain, snapshot: str) -> libvirt.virDomainSnapshot | None:
        try:
            return domain.snapshotLookupByName(snapshot, 0)
        except libvirt.libvirtError as error:
            if error.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN_SNAPSHOT:
                return None
            raise host.translate(error) from error

    def create_snapshot(self, name: str, snapshot: str, *, include_ram: bool) -> None:
        """An internal snapshot of the qcow2 disk (and memory); see HypervisorDriver.create_snapshot."""
        if not SNAPSHOT_PATTERN.match(snapshot):
            raise GuestFailed(f"snapshot name {snapshot!r} must be letters, digits and underscores")
        domain = self._domain(name)
        if self._snapshot(domain, snapshot) is not None:
            return
        with host.translated():
            memory = include_ram and bool(domain.isActive())
            # the seed is a raw read-only disk: it has no internal snapshots and needs none
            domain.snapshotCreateXML(
                f"<domainsnapshot><name>{snapshot}</name><description>{WITH_MEMORY if memory else DISK_ONLY}"
                "</description><disks><disk name='vda' snapshot='internal'/><disk name='vdb' snapshot='no'/>"
                "</disks></domainsnapshot>", 0)

    def revert_snapshot(self, name: str, snapshot: str) -> None:
        """Back to the snapshot: running from its memory, or off with its disk; see HypervisorDriver."""
        domain = self._domain(name)
        found = self._snapshot(domain, snapshot)
        if found is None:
            raise GuestFailed(f"guest {name} has no snapshot {snapshot!r}")
        with host.translated():
            described = ElementTree.fromstring(found.getXMLDesc(0))  # noqa: S314  # libvirt's own XML
            taken_running = described.findtext("state") in {"running", "paused"}
            if described.findtext("description") == WITH_MEMORY and taken_running:
                self._fresh_console(name, "restored from a snapshot")
                domain.revertToSnapshot(found, libvirt.VIR_DOMAIN_SNAPSHOT_REVERT_RUNNING)
                return
            if domain.isActive():
                domain.destroy()
            if not taken_running:
                domain.revertToSnapshot(found, 0)
                return
            # a disk-only snapshot of a running guest holds memory it must not come back with: revert paused
            # (the disk is the snapshot's then) and cut the power, so the next start boots from that disk
            domain.revertToSnapshot(found, libvirt.VIR_DOMAIN_SNAPSHOT_REVERT_PAUSED)
            domain.destroy()

    def delete_snapshot(self, name: str, snapshot: str) -> None:
        """Remove the internal snapshot; a missing one is fine."""
        domain = self._domain(name)
        found = self._snapshot(domain, snapshot)
        if found is None:
            return
        with host.translated():
            try:
                found.delete(0)
            except libvirt.libvirtError as error:
                if error.get_error_code() != libvirt.VIR_ERR_NO_DOMAIN_SNAPSHOT:
                    raise

    def list_snapshots(self, name: str) -> list[str]:
        """The guest's internal snapshots by name."""
        domain = self._domain(name)
        with host.translated():
            return sorted(domain.snapshotListNames(0))

    def _disk_path(self, name: str) -> Path:
        if not is_local(self.uri):
            raise GuestFailed(f"disk copies read the node's filesystem; {self.uri} is not this machine")
        return storage.volume_path(storage.pool(self._connection()), storage.disk_volume(name))

    def export_disk(self, name: str, destination: Path) -> None:
        """A compressed qcow2 of the whole disk, the guest paused meanwhile; see HypervisorDriver.export_disk."""
        domain = self._domain(name)
        disk = self._disk_path(name)
        with host.translated():
            # pausing flushes QEMU's writes and caches to the file: the copy is what a power cut would leave
            paused = domain.state(0)[0] == libvirt.VIR_DOMAIN_RUNNING
            if paused:
                domain.suspend()
        try:
            storage.export_qcow2(disk, destination)
        finally:
            if paused:
                with host.translated():
                    if domain.isActive():
                        domain.resume()

    def import_disk(self, name: str, source: Path) -> None:
        """Write the qcow2 at source over the stopped guest's disk; see HypervisorDriver.import_disk."""
        domain = self._domain(name)
        disk = self._disk_path(name)
        with host.translated():
            if domain.isActive():
                raise GuestFailed(f"guest {name} must be off for its disk to be replaced")
        size = storage.qcow2_virtual_size(source)
        capacity = storage.qcow2_virtual_size(disk)
        if size > capacity:
            raise GuestFailed(f"the copy ({size} bytes) is bigger than the guest's disk ({capacity} bytes)")
        storage.import_qcow2(source, disk)
