"""FakeDriver: a node in memory with the same contract as LibvirtDriver, for tests and simulations only.

Guests "boot" at once: the console shows the same CLOUDLET_READY line the tiny image prints, made from
the guest's own seed, so what the control plane reads is what a real guest would announce.
"""

from __future__ import annotations

import posixpath
import shlex
import subprocess
import tempfile
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

from cloudlet.drivers.base import (
    SNAPSHOT_PATTERN,
    VNC_PASSWORD_MAX,
    AddressFirewall,
    AddressTraffic,
    BootEvent,
    Capabilities,
    CommandRun,
    ConsoleOutput,
    Counted,
    FirewallHits,
    GuestFailed,
    GuestInfo,
    GuestLocation,
    GuestNotFound,
    GuestPath,
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
from cloudlet.drivers.fake_console import FakeConsoles, FakeSerial
from cloudlet.drivers.fake_files import FakeFiles
from cloudlet.drivers.libvirt.domain_xml import spec_digest
from cloudlet.drivers.libvirt.storage import qcow2_virtual_size
from cloudlet.drivers.seed import parse_ready, ready_line

GIB = 1024**3
QEMU_IMG_TIMEOUT_SECONDS = 120  # the fake only makes small files
FAKE_DISK_BYTES = 1024 * 1024  # the size of the raw disk a fake guest exports (its content, zero-padded)


@dataclass
class _Guest:
    spec: GuestSpec  # the spec it was defined with, or the one last given to write_seed
    state: GuestState = GuestState.STOPPED
    console: list[str] = field(default_factory=list)  # the current boot's lines
    history: str = ""  # the boots before it, as console_history keeps them (bounded, with separators)
    boots: int = 0
    seed: GuestSpec | None = None  # what its seed disk holds; None until write_seed succeeds
    passwords: dict[str, str] = field(default_factory=dict)  # what set_password set inside the running guest
    files: FakeFiles = field(default_factory=FakeFiles)  # what its agent wrote and made
    booted: GuestSpec | None = None  # the spec whose vCPUs and memory the running machine was started with
    disk: bytes = b""  # what its disk holds (tests write it with write_disk)
    snapshots: dict[str, _FakeSnapshot] = field(default_factory=dict)
    bandwidth_mbit: int | None = None  # its NIC's cap (set_bandwidth)
    net_bytes: tuple[int, int] = (0, 0)  # (received, sent) by the guest since it started (tests add traffic)
    services: set[str] = field(default_factory=lambda: {"ssh"})  # the units `systemctl is-active` finds active


@dataclass(frozen=True)
class _FakeSnapshot:
    disk: bytes
    running: bool  # taken with include_ram from a running guest: a revert brings it back running


def _definition(spec: GuestSpec) -> tuple[str, str, int, int, int]:
    """What define_guest builds from a spec; write_seed may not change it."""
    return spec.name, spec.image, spec.vcpus, spec.memory_mib, spec.disk_gib


class FakeDriver:
    """A hypervisor node that lives in this process."""

    def __init__(self) -> None:
        self.capabilities = Capabilities(hardware_virtualisation=True, live_resize_memory=True,
                                         internal_snapshots=True, serial_console_log=True, vnc_console=True,
                                         graceful_shutdown=True)
        self._images: dict[str, ImageInfo] = {}
        self._guests: dict[str, _Guest] = {}
        self._lock = threading.Lock()
        self._consoles = FakeConsoles()  # real VNC servers on 127.0.0.1 and getty-like serial lines
        self.gateways: set[str] = set()  # what serve_gateways was given
        self.firewalls: dict[str, AddressFirewall] = {}  # what apply_firewalls was given last, by address
        self.hits: dict[str, FirewallHits] = {}  # what firewall_hits says of an address, when a test sets it
        self.traffic: dict[str, AddressTraffic] = {}  # what firewall_traffic says of an address, when a test sets it
        self.tables_written = 0
        self.node_firewall: NodeFirewall | None = None  # the node's own table: None when it has none
        self.commands: list[tuple[str, str]] = []  # (guest, command) of every command run_in_guest ran, in order

    def _guest(self, name: str) -> _Guest:
        guest = self._guests.get(name)
        if guest is None:
            raise GuestNotFound(name)
        return guest

    @staticmethod
    def _fresh_console(guest: _Guest, event: BootEvent) -> None:
        # as the libvirt driver does at each start: the finished boot's output joins the history
        guest.history = history_after_boot(guest.history, _text(guest.console), event, datetime.now(UTC))
        guest.console = []

    @classmethod
    def _boot(cls, guest: _Guest, event: BootEvent = "started") -> None:
        # like the tiny image, every boot (a start or a reboot) applies what the seed disk holds now
        spec = guest.seed
        if spec is None:
            raise GuestFailed(f"no seed written for guest {guest.spec.name!r}: write_seed must succeed before it "
                              "starts")
        address = spec.network.address.split("/")[0] if spec.network else None
        ready = GuestReady(spec.instance_id, spec.hostname.split(".")[0], address, len(spec.ssh_authorized_keys),
                           spec.root_password is not None)
        cls._fresh_console(guest, event)
        guest.console = ["fake firmware", "fake kernel", ready_line(ready)]
        guest.net_bytes = (0, 0)  # a new QEMU process counts from zero
        guest.state = GuestState.RUNNING
        guest.booted = guest.spec
        guest.boots += 1

    def apply_firewalls(self, firewalls: Sequence[AddressFirewall]) -> None:
        """Record the address firewalls the node enforces."""
        with self._lock:
            self.firewalls = {firewall.address: firewall for firewall in firewalls}
            self.tables_written += 1

    def firewalls_in_force(self, firewalls: Sequence[AddressFirewall]) -> bool:
        """Whether what apply_firewalls recorded is these firewalls (a test may change it behind Cloudlet's back)."""
        with self._lock:
            return self.firewalls == {firewall.address: firewall for firewall in firewalls}

    def firewall_hits(self) -> dict[str, FirewallHits]:
        """Counters a test set (`hits`), else zero for every rule and policy of the firewalls recorded."""
        with self._lock:
            return {address: self.hits.get(address, FirewallHits(tuple((0, 0) for _ in wall.rules), (0, 0)))
                    for address, wall in self.firewalls.items()}

    def firewall_traffic(self) -> dict[str, AddressTraffic]:
        """What a test set (`traffic`), else nothing seen, for every address of the firewalls recorded."""
        with self._lock:
            return {address: self.traffic.get(address, AddressTraffic(self.tables_written, Counted(0, 0), {}, {}, {}))
                    for address in self.firewalls}

    def apply_node_firewall(self, firewall: NodeFirewall) -> None:
        """Record the node's own firewall (none at all for one without rules, as the node's table goes)."""
        with self._lock:
            self.node_firewall = firewall if firewall.rules else None

    def node_firewall_in_force(self, firewall: NodeFirewall) -> bool:
        """Whether what apply_node_firewall recorded is this firewall (a test may change it behind its back)."""
        with self._lock:
            return self.node_firewall == (firewall if firewall.rules else None)

    def serve_gateways(self, gateways: frozenset[str]) -> None:
        """Record the gateways the node's network holds."""
        with self._lock:
            self.gateways |= gateways

    def import_image(self, name: str, source: Path) -> ImageInfo:
        """Record a qcow2 file as base image name."""
        size = qcow2_virtual_size(source)
        with self._lock:
            existing = self._images.get(name)
            if existing is not None:
                if existing.virtual_size_bytes == size:
                    return existing
                raise GuestFailed(f"an image named {name!r} already exists with a different size")
            image = ImageInfo(name, size, source.stat().st_size)
            self._images[name] = image
            return image

    def list_images(self) -> list[ImageInfo]:
        """The recorded base images."""
        return sorted(self._images.values())

    def delete_image(self, name: str) -> None:
        """Forget a base image; a missing one is fine."""
        self._images.pop(name, None)

    def define_guest(self, spec: GuestSpec) -> None:
        """Record the guest, stopped and seedless; same idempotency as LibvirtDriver."""
        with self._lock:
            existing = self._guests.get(spec.name)
            if existing is not None:
                # compared as libvirt compares them: a new root password alone is not a different guest
                if spec_digest(existing.spec) != spec_digest(spec):
                    raise GuestFailed(f"a different guest named {spec.name!r} already exists")
                existing.bandwidth_mbit = spec.bandwidth_mbit
                return
            image = self._images.get(spec.image)
            if image is None:
                raise ImageNotFound(spec.image)
            if spec.disk_gib * GIB < image.virtual_size_bytes:
                raise GuestFailed(f"the disk ({spec.disk_gib * GIB} bytes) is smaller than its image")
            self._guests[spec.name] = _Guest(spec, bandwidth_mbit=spec.bandwidth_mbit)

    def write_seed(self, spec: GuestSpec) -> None:
        """Replace the guest's seed; its next boot (start or reboot) applies it."""
        with self._lock:
            guest = self._guest(spec.name)
            if _definition(guest.spec) != _definition(spec):
                raise GuestFailed(f"guest {spec.name!r} was defined with another image, vCPU count, memory or disk; "
                                  "a seed cannot change those")
            guest.spec = guest.seed = spec

    def resize_guest(self, spec: GuestSpec) -> None:
        """New vCPUs and memory for the next boot, and a bigger disk at once; same contract as LibvirtDriver."""
        with self._lock:
            guest = self._guest(spec.name)
            if spec.image != guest.spec.image:
                raise GuestFailed(f"guest {spec.name!r} was built from image {guest.spec.image!r}, not {spec.image!r}")
            if spec.disk_gib < guest.spec.disk_gib:
                raise GuestFailed(f"the disk of guest {spec.name!r} is {guest.spec.disk_gib} GiB; a disk cannot shrink")
            guest.spec = spec
            guest.bandwidth_mbit = spec.bandwidth_mbit
            if guest.seed is not None:  # the seed disk keeps its content; only the definition it matches changed
                guest.seed = replace(guest.seed, vcpus=spec.vcpus, memory_mib=spec.memory_mib, disk_gib=spec.disk_gib)

    def create_guest(self, spec: GuestSpec) -> None:
        """define_guest, write_seed and start; same idempotency and cleanup as LibvirtDriver."""
        existed = spec.name in self._guests
        self.define_guest(spec)
        try:
            if self._guest(spec.name).state != GuestState.RUNNING:
                self.write_seed(spec)
                self.start(spec.name)
        except BaseException:
            if not existed:
                self.destroy_guest(spec.name)
            raise

    def set_bandwidth(self, name: str, mbit: int | None) -> None:
        """Record the NIC's cap."""
        if mbit is not None and mbit < 1:
            raise GuestFailed("a bandwidth cap is at least 1 Mbit/s")
        with self._lock:
            self._guest(name).bandwidth_mbit = mbit

    def bandwidth(self, name: str) -> int | None:
        """The NIC's cap as last set."""
        return self._guest(name).bandwidth_mbit

    def add_traffic(self, name: str, received: int, sent: int) -> None:
        """Fake only: bytes the running guest received and sent, as its NIC's counters would count them."""
        guest = self._guest(name)
        guest.net_bytes = (guest.net_bytes[0] + received, guest.net_bytes[1] + sent)

    def hardware(self, name: str) -> GuestInfo:
        """The guest's vCPUs, memory and power state."""
        guest = self._guest(name)
        # like a real machine, a running one keeps the hardware it was started with until it powers off
        held = guest.booted if guest.state == GuestState.RUNNING and guest.booted is not None else guest.spec
        return GuestInfo(name, guest.state, held.vcpus, held.memory_mib)

    def wait_ready(self, name: str, timeout: float) -> GuestReady:
        """The readiness line of the last boot."""
        guest = self._guest(name)
        for line in guest.console:
            ready = parse_ready(line)
            if ready is not None and guest.state == GuestState.RUNNING:
                return ready
        raise GuestFailed(f"guest {name} stopped before it was ready")

    def agent_ping(self, name: str) -> bool:
        """A running guest's agent answers (whatever its image: the fake does not know images' capabilities)."""
        return self._guest(name).state == GuestState.RUNNING

    def set_password(self, name: str, user: str, password: str) -> None:
        """The running guest's agent records the password."""
        with self._lock:
            guest = self._guest(name)
            if guest.state != GuestState.RUNNING:
                raise GuestFailed(f"guest {name} is not running: its agent cannot set a password")
            guest.passwords[user] = password

    def guest_password(self, name: str, user: str) -> str | None:
        """What set_password last set for user in the guest (for tests)."""
        return self._guest(name).passwords.get(user)

    def _agent_guest(self, name: str, doing: str) -> _Guest:
        guest = self._guest(name)
        if guest.state != GuestState.RUNNING:
            raise GuestFailed(f"guest {name} is not running: its agent cannot {doing}")
        return guest

    def _agent_files(self, name: str) -> FakeFiles:
        return self._agent_guest(name, "reach its files").files

    def write_guest_file(self, name: str, path: str, data: bytes, mode: int) -> None:
        """The running guest's agent keeps the file."""
        with self._lock:
            self._agent_files(name).write(path, data, mode)

    def locate_guest_path(self, name: str, path: str) -> GuestLocation:
        """What the running guest has at path (the fake has no symlinks)."""
        with self._lock:
            return self._agent_files(name).locate(path)

    def list_guest_dir(self, name: str, path: str, limit: int) -> tuple[list[GuestPath], bool]:
        """A directory of the running guest."""
        with self._lock:
            return self._agent_files(name).listing(path, limit)

    def read_guest_file(self, name: str, path: str, limit: int) -> bytes:
        """A file of the running guest."""
        with self._lock:
            return self._agent_files(name).read(path, limit)

    def make_guest_dir(self, name: str, path: str) -> None:
        """A directory made in the running guest."""
        with self._lock:
            self._agent_files(name).mkdir(path)

    def move_guest_path(self, name: str, source: str, target: str) -> None:
        """A path renamed in the running guest."""
        with self._lock:
            self._agent_files(name).move(source, target)

    def remove_guest_path(self, name: str, path: str) -> None:
        """A path removed in the running guest."""
        with self._lock:
            self._agent_files(name).remove(path)

    def run_in_guest(self, name: str, command: str, timeout: float, output_cap: int) -> CommandRun:
        """The running guest's agent runs command through a tiny shell that knows only what tests of an agent use
        (hostname, cat, echo, systemctl is-active, sleep, exit, yes); see _interpret. Recorded in `commands`."""
        check_command(command, timeout, output_cap)
        with self._lock:
            guest = self._agent_guest(name, "run a command")
            self.commands.append((name, command))
            output, status, seconds = _interpret(guest, command, timeout, output_cap)
        return CommandRun(status, output[:output_cap], len(output) > output_cap, status is None, seconds)

    def set_services(self, name: str, units: set[str]) -> None:
        """Fake only: the units `systemctl is-active` finds active in the guest (it starts with ssh alone)."""
        self._guest(name).services = set(units)

    def seeded(self, name: str) -> GuestSpec | None:
        """The spec the guest's seed disk was last written from (for tests)."""
        return self._guest(name).seed

    def guest_file(self, name: str, path: str) -> tuple[bytes, int] | None:
        """What the guest's agent last wrote at path, with its mode (for tests)."""
        found = self._guest(name).files.files.get(path)
        return None if found is None else (found[0], found[1])

    def ssh_banner(self, name: str, address: str, timeout: float) -> str | None:
        """A running guest answers at the address its seed gave it."""
        guest = self._guest(name)
        booted = guest.seed.network.address.split("/")[0] if guest.seed and guest.seed.network else None
        if guest.state != GuestState.RUNNING or address != booted:
            raise GuestFailed(f"nothing answered on {address} port 22 within {timeout:g} s")
        return "SSH-2.0-OpenSSH_9.2p1 Debian-2 (fake)"

    def state(self, name: str) -> GuestState:
        """The guest's power state."""
        return self._guest(name).state

    def start(self, name: str) -> None:
        """Power on; a running guest is left alone."""
        guest = self._guest(name)
        if guest.state != GuestState.RUNNING:
            self._boot(guest)

    def shutdown(self, name: str, timeout: float = 60.0) -> None:
        """Stop the guest."""
        self._guest(name).state = GuestState.STOPPED

    def reboot(self, name: str) -> None:
        """Boot the guest again (with the hardware it has now); a stopped guest is started."""
        guest = self._guest(name)
        self._boot(guest, "rebooted" if guest.state == GuestState.RUNNING else "started")

    def poweroff(self, name: str) -> None:
        """Stop the guest."""
        self._guest(name).state = GuestState.STOPPED

    def console_output(self, name: str) -> ConsoleOutput:
        """The console of the last boot (empty for a guest never started, as a log never written)."""
        lines = list(self._guest(name).console)
        return ConsoleOutput(text=_text(lines), lines=lines)

    def console_history(self, name: str) -> ConsoleOutput:
        """The boots before the last one (bounded, with separators) and then the last one's console."""
        guest = self._guest(name)
        return history_output(guest.history, _text(guest.console))

    def clear_console(self, name: str) -> None:
        """Forget the console history and the current boot's lines."""
        guest = self._guest(name)
        guest.history, guest.console = "", []

    def print_console(self, name: str, text: str) -> None:
        """Fake only: lines the guest prints on its serial console now, as a program in the guest would."""
        self._guest(name).console.extend(text.splitlines())

    def _running(self, name: str) -> Callable[[], bool]:
        def running() -> bool:
            guest = self._guests.get(name)
            return guest is not None and guest.state == GuestState.RUNNING

        return running

    def vnc_console(self, name: str, password: str, valid_until: datetime) -> VncEndpoint:
        """The guest's fake VNC server (a real RFB server on 127.0.0.1) with a new password."""
        if not 1 <= len(password) <= VNC_PASSWORD_MAX:
            raise GuestFailed(f"a VNC password is 1 to {VNC_PASSWORD_MAX} characters")
        if self._guest(name).state != GuestState.RUNNING:
            raise GuestFailed(f"guest {name} is not running: its VNC server runs only while it does")
        server = self._consoles.vnc(name, self._running(name))
        server.set_password(password, valid_until)
        return server.endpoint

    def open_serial(self, name: str) -> FakeSerial:
        """A getty-like serial line; a session open before ends."""
        guest = self._guest(name)
        if guest.state != GuestState.RUNNING:
            raise GuestFailed(f"guest {name} is not running: its serial console exists only while it runs")
        booted = _booted(guest)
        return self._consoles.attach(name, booted.hostname if booted else guest.spec.hostname, self._running(name))

    def stats(self, name: str) -> GuestStats:
        """Counters that grow with each boot, like a real guest's."""
        guest = self._guest(name)
        running = guest.state == GuestState.RUNNING
        spec, boots = guest.spec, guest.boots
        held = guest.booted if running and guest.booted is not None else spec
        return GuestStats(
            sampled_at=datetime.now(UTC), cpu_time_ns=boots * 1_000_000_000 if running else 0, vcpus=held.vcpus,
            memory_mib=held.memory_mib, memory_used_mib=held.memory_mib // 8 if running else None,
            disk_read_bytes=boots * 15_000_000 if running else 0, disk_write_bytes=0,
            disk_read_requests=boots * 500 if running else 0, disk_write_requests=0,
            disk_capacity_bytes=spec.disk_gib * GIB, disk_allocation_bytes=200_704,
            net_rx_bytes=guest.net_bytes[0] if running else 0, net_tx_bytes=guest.net_bytes[1] if running else 0,
            net_rx_packets=0, net_tx_packets=0,
        )

    def list_guests(self) -> list[GuestInfo]:
        """Every guest on the fake node."""
        return [self.hardware(name) for name in sorted(self._guests)]

    def destroy_guest(self, name: str) -> None:
        """Forget the guest; a missing one is fine."""
        with self._lock:
            self._guests.pop(name, None)
        self._consoles.forget(name)

    # -- disk content, snapshots and disk copies

    def write_disk(self, name: str, data: bytes) -> None:
        """Fake only: put data on the guest's disk, as a program in the guest would."""
        if len(data) > FAKE_DISK_BYTES:
            raise GuestFailed(f"a fake disk holds at most {FAKE_DISK_BYTES} bytes")
        self._guest(name).disk = data

    def read_disk(self, name: str) -> bytes:
        """Fake only: what the guest's disk holds."""
        return self._guest(name).disk

    def create_snapshot(self, name: str, snapshot: str, *, include_ram: bool) -> None:
        """Record the disk (and whether memory was kept); an existing snapshot of that name is kept."""
        if not SNAPSHOT_PATTERN.match(snapshot):
            raise GuestFailed(f"snapshot name {snapshot!r} must be letters, digits and underscores")
        with self._lock:
            guest = self._guest(name)
            guest.snapshots.setdefault(snapshot, _FakeSnapshot(guest.disk,
                                                               include_ram and guest.state == GuestState.RUNNING))

    def revert_snapshot(self, name: str, snapshot: str) -> None:
        """The snapshot's disk; running again only when it kept a running guest's memory."""
        with self._lock:
            guest = self._guest(name)
            found = guest.snapshots.get(snapshot)
            if found is None:
                raise GuestFailed(f"guest {name} has no snapshot {snapshot!r}")
            guest.disk = found.disk
            if found.running:  # the machine comes back from its memory: a new run, with a fresh console log
                self._fresh_console(guest, "restored from a snapshot")
            guest.state = GuestState.RUNNING if found.running else GuestState.STOPPED

    def delete_snapshot(self, name: str, snapshot: str) -> None:
        """Forget the snapshot; a missing one is fine."""
        with self._lock:
            self._guest(name).snapshots.pop(snapshot, None)

    def list_snapshots(self, name: str) -> list[str]:
        """The guest's snapshot names."""
        return sorted(self._guest(name).snapshots)

    def export_disk(self, name: str, destination: Path) -> None:
        """A real compressed qcow2 (qemu-img) of the fake disk's content."""
        data = self._guest(name).disk
        partial = destination.with_name(destination.name + ".partial")
        with tempfile.TemporaryDirectory(prefix="cloudlet-fake-disk-") as tmp:
            raw = Path(tmp) / "disk.raw"
            raw.write_bytes(data.ljust(FAKE_DISK_BYTES, b"\0"))
            try:
                _qemu_img("convert", "-c", "-f", "raw", "-O", "qcow2", str(raw), str(partial))
                partial.replace(destination)
            finally:
                partial.unlink(missing_ok=True)

    def import_disk(self, name: str, source: Path) -> None:
        """Read a qcow2 made by export_disk back into the fake disk; the guest must be off."""
        guest = self._guest(name)
        if guest.state != GuestState.STOPPED:
            raise GuestFailed(f"guest {name} must be off for its disk to be replaced")
        size = qcow2_virtual_size(source)
        if size > FAKE_DISK_BYTES:
            raise GuestFailed(f"the copy ({size} bytes) is bigger than the guest's disk")
        with tempfile.TemporaryDirectory(prefix="cloudlet-fake-disk-") as tmp:
            raw = Path(tmp) / "disk.raw"
            _qemu_img("convert", "-f", "qcow2", "-O", "raw", str(source), str(raw))
            guest.disk = raw.read_bytes().rstrip(b"\0")


def _booted(guest: _Guest) -> GuestReady | None:
    """What the guest announced at its last boot (its console's ready line): the host name it runs with is the one it
    booted with, not the newest seed's."""
    return next((ready for ready in map(parse_ready, guest.console) if ready is not None), None)


def _interpret(guest: _Guest, command: str, timeout: float, cap: int) -> tuple[bytes, int | None, float]:
    """What one simple command of the fake's shell prints (the caller cuts it at cap; `yes` stops one byte past it),
    its exit status (None: killed at timeout) and how long it took; as dash and coreutils on Debian, never waiting."""
    try:
        words = shlex.split(command, comments=True)
    except ValueError:
        return b"sh: 1: Syntax error: Unterminated quoted string\n", 2, 0.0
    match words:
        case ["hostname"]:
            booted = _booted(guest)
            return f"{booted.hostname if booted else guest.spec.hostname.split('.')[0]}\n".encode(), 0, 0.0
        case ["cat", *paths] if paths:
            found = [guest.files.files.get(posixpath.normpath(path)) for path in paths]
            output = b"".join(file[0] if file else f"cat: {path}: No such file or directory\n".encode()
                              for path, file in zip(paths, found, strict=True))
            return output, 0 if all(found) else 1, 0.0
        case ["echo", *rest]:
            return (" ".join(rest) + "\n").encode(), 0, 0.0
        case ["systemctl", "is-active", unit]:
            active = unit.removesuffix(".service") in guest.services
            return (b"active\n", 0, 0.0) if active else (b"inactive\n", 3, 0.0)
        case ["sleep", seconds] if seconds.replace(".", "", 1).isdigit():
            return (b"", None, timeout) if float(seconds) >= timeout else (b"", 0, float(seconds))
        case ["exit", status] if status.isdigit():
            return b"", int(status) % 256, 0.0
        case ["yes"]:
            return (b"y\n" * (cap // 2 + 1))[:cap + 1], 0, 0.0  # endless: a byte past the cap says there was more
        case [word, *_]:
            return f"sh: 1: {word}: not found\n".encode(), 127, 0.0
    return b"", 0, 0.0  # only blanks and comments: check_command lets comments through


def _text(lines: list[str]) -> str:
    return "".join(line + "\n" for line in lines)


def _qemu_img(*args: str) -> None:
    try:
        result = subprocess.run(["qemu-img", *args], capture_output=True, text=True, check=False,  # noqa: S603, S607
                                timeout=QEMU_IMG_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired as error:  # a hung disk (NFS, a dying drive) must not hold the action
        raise GuestFailed(f"qemu-img {args[0]} did not finish within {QEMU_IMG_TIMEOUT_SECONDS} s") from error
    if result.returncode != 0:
        raise GuestFailed(f"qemu-img {args[0]} failed: {result.stderr.strip()}")
