"""What the control plane may ask of a hypervisor node, as a small typed Protocol.

Everything here speaks Cloudlet's words (a guest is named by the control plane, an image by its
catalogue name); hypervisor ids (domain UUIDs, volume keys, tap devices) never leave drivers/.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Literal, NamedTuple, Protocol

NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
HOSTNAME_PATTERN = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)(\.(?!-)[A-Za-z0-9-]{1,63}(?<!-))*$")
SNAPSHOT_PATTERN = re.compile(r"^[A-Za-z0-9_]{1,64}$")  # CyberPanel's rule; also safe in XML and paths
MAX_BANDWIDTH_MBIT = 1_000_000  # 1 Tbit/s: a cap past any NIC, and within libvirt's 32-bit kilobytes per second


class DriverError(Exception):
    """Base of the errors a driver raises; each one tells the workflow what to do next."""


class RetryLater(DriverError):
    """The node is busy (a lock, a job in flight); the same call may succeed after `after` seconds."""

    def __init__(self, reason: str, after: float = 5.0) -> None:
        super().__init__(reason)
        self.reason = reason
        self.after = after


class NodeUnreachable(DriverError):
    """The node's hypervisor cannot be reached; mark the node and retry elsewhere or later."""


class GuestFailed(DriverError):
    """The guest cannot be built or run as asked; retrying the same call will not help."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class GuestNotFound(GuestFailed):
    """No guest of that name exists on the node."""

    def __init__(self, name: str) -> None:
        super().__init__(f"no guest named {name!r} on this node")
        self.name = name


class ImageNotFound(GuestFailed):
    """No base image of that name exists on the node."""

    def __init__(self, name: str) -> None:
        super().__init__(f"no image named {name!r} on this node")
        self.name = name


class ConsoleClosed(DriverError):
    """A serial console session has ended: closed, taken over by a newer session, or its guest stopped."""


class GuestState(StrEnum):
    """A guest's power state as the hypervisor reports it."""

    RUNNING = "running"
    STOPPED = "stopped"
    PAUSED = "paused"
    CRASHED = "crashed"
    STARTING = "starting"
    STOPPING = "stopping"


class Capabilities(NamedTuple):
    """What a driver can do; the control plane reads these instead of asking for a driver's type."""

    hardware_virtualisation: bool  # False: guests run under emulation (TCG), slower but correct
    live_resize_memory: bool
    internal_snapshots: bool
    serial_console_log: bool
    vnc_console: bool  # the endpoints vnc_console() gives are reachable from the control plane
    graceful_shutdown: bool  # ACPI power button reaches the guest


@dataclass(frozen=True)
class GuestNetwork:
    """The static address a guest gets through its seed (network-config v2)."""

    address: str  # interface address with prefix, e.g. "192.0.2.10/24"
    gateway: str | None = None
    nameservers: tuple[str, ...] = ()
    address6: str | None = None  # e.g. "2001:db8::10/64"
    gateway6: str | None = None

    def __post_init__(self) -> None:
        ipaddress.ip_interface(self.address)
        for single in (self.gateway, self.gateway6, *self.nameservers):
            if single is not None:
                ipaddress.ip_address(single)
        if self.address6 is not None:
            ipaddress.ip_interface(self.address6)


class GuestPathKind(StrEnum):
    """What a path inside a guest names."""

    FILE = "file"
    DIRECTORY = "directory"
    SYMLINK = "symlink"
    OTHER = "other"  # a device, socket or pipe


class GuestPath(NamedTuple):
    """One entry of a guest's file system, as the guest reports it (a symlink is not followed)."""

    name: str
    kind: GuestPathKind
    size: int
    mode: int  # permission bits
    modified: datetime


class GuestLocation(NamedTuple):
    """Where a path leads inside a guest: the path with every symlink resolved and what is there (None: nothing),
    and what the path itself names, its last part not followed (a symlink is itself)."""

    real: str
    found: GuestPath | None
    entry: GuestPath | None


MAX_COMMAND_BYTES = 16 * 1024  # the longest command run_in_guest takes (UTF-8)


class CommandRun(NamedTuple):
    """What a command run inside a guest did: its exit status (None when it was killed at its timeout), its output
    (stdout and stderr interleaved, at most the cap asked for), whether more was cut off, and how long it took."""

    exit_status: int | None
    output: bytes
    truncated: bool
    timed_out: bool
    seconds: float


def check_command(command: str, timeout: float, output_cap: int) -> None:
    """ValueError unless command is a non-blank shell command of at most MAX_COMMAND_BYTES without NUL (a program's
    argument cannot hold one), timeout is positive and output_cap is not negative; checked before the guest is asked."""
    if not command.strip():
        raise ValueError("a command cannot be empty")
    if len(command.encode()) > MAX_COMMAND_BYTES or "\0" in command:
        raise ValueError(f"a command is at most {MAX_COMMAND_BYTES} bytes, without NUL")
    if timeout <= 0 or output_cap < 0:
        raise ValueError("a command's timeout is positive and its output cap not negative")


class FirewallAction(StrEnum):
    """What a firewall rule or policy does with a packet."""

    ALLOW = "allow"
    BLOCK = "block"


class FirewallProtocol(StrEnum):
    """The protocols a firewall rule matches."""

    TCP = "tcp"
    UDP = "udp"
    ICMP = "icmp"  # ICMP for an IPv4 address, ICMPv6 for an IPv6 one
    ANY = "any"


def _check_match(source: str | None, protocol: FirewallProtocol, ports: tuple[int, int] | None) -> None:
    """ValueError unless source is a CIDR (or None) and ports a range of 1-65535 on TCP or UDP (or None)."""
    if source is not None:
        ipaddress.ip_network(source)
    if ports is not None:
        low, high = ports
        if not 1 <= low <= high <= 65535:
            raise ValueError(f"port range {low}-{high} is not within 1-65535")
        if protocol not in (FirewallProtocol.TCP, FirewallProtocol.UDP):
            raise ValueError("ports are matched for tcp and udp only")


class RateUnit(StrEnum):
    """What a rule's per-source rate limit counts."""

    PACKETS = "packets"
    CONNECTIONS = "connections"  # new connections (TCP handshakes, new UDP flows)


class RateLimit(NamedTuple):
    """At most `per_second` packets or new connections a second from each source address."""

    per_second: int
    unit: RateUnit


@dataclass(frozen=True)
class FirewallRuleSpec:
    """One rule of an address's inbound firewall: packets from source (any when None) to ports (a range, any when
    None; TCP and UDP only) are allowed or blocked. An allow rule may limit each source's rate: what exceeds it
    is dropped, whichever rule decides the packet."""

    action: FirewallAction
    protocol: FirewallProtocol
    source: str | None = None  # a CIDR of the address's family
    ports: tuple[int, int] | None = None
    rate_limit: RateLimit | None = None

    def __post_init__(self) -> None:
        if self.rate_limit is not None and (self.action is not FirewallAction.ALLOW or self.rate_limit.per_second < 1):
            raise ValueError("a rate limit is at least 1 a second, on an allow rule")
        _check_match(self.source, self.protocol, self.ports)


@dataclass(frozen=True)
class AddressFirewall:
    """The firewall of one guest address: its inbound rules in order (the first that matches decides), then the
    default policies of each direction. Replies to allowed traffic always pass."""

    address: str
    default_in: FirewallAction = FirewallAction.ALLOW
    default_out: FirewallAction = FirewallAction.ALLOW
    rules: tuple[FirewallRuleSpec, ...] = ()
    out_mbit: int | None = None  # the guest's NIC cap: what the guest sends beyond it is dropped, where the node
    # cannot shape its NIC's traffic both ways (drivers/libvirt/network.py); None: no cap

    def __post_init__(self) -> None:
        address = ipaddress.ip_address(self.address)
        for rule in self.rules:
            if rule.source is not None and ipaddress.ip_network(rule.source, strict=False).version != address.version:
                raise ValueError(f"source {rule.source} is not of {self.address}'s family")


class Counted(NamedTuple):
    """Packets and bytes a kernel counter has seen."""

    packets: int
    bytes: int


class AddressTraffic(NamedTuple):
    """What reached one guest address, from the kernel's counters since its node's table was last written: all
    inbound packets; by source address and by (protocol, destination port) for TCP and UDP, each for the sources
    and ports seen lately (an entry unseen for a while is forgotten); and a sample of what the firewall dropped,
    by (source, protocol, destination port). `table` tells the writings of the node's table apart (counters
    start from zero at each)."""

    table: int
    total: Counted
    sources: dict[str, Counted]
    ports: dict[tuple[str, int], Counted]
    dropped: dict[tuple[str, str, int], Counted]


class FirewallHits(NamedTuple):
    """What an address's inbound rules (in their order) and its inbound policy have matched since its node's table
    was last written: (packets, bytes) each."""

    rules: tuple[tuple[int, int], ...]
    policy: tuple[int, int]


@dataclass(frozen=True)
class NodeRuleSpec:
    """One rule of a node's own inbound firewall: packets to the node from source (any when None; IPv4 or IPv6)
    of protocol (ICMP means ICMP and ICMPv6 when source is any) to ports (a range, any when None; TCP and UDP
    only) are allowed or blocked."""

    action: FirewallAction
    protocol: FirewallProtocol
    source: str | None = None  # a CIDR
    ports: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        _check_match(self.source, self.protocol, self.ports)


@dataclass(frozen=True)
class NodeFirewall:
    """A node's own inbound firewall (its input hook, not its guests' traffic): loopback, replies and IPv6
    neighbour discovery pass first, then the control plane's addresses on the node's management ports (TCP),
    then the rules in order (the first that matches decides); whatever no rule matches passes."""

    rules: tuple[NodeRuleSpec, ...] = ()
    control_sources: tuple[str, ...] = ()  # addresses or CIDRs the control plane reaches the node from
    control_ports: tuple[int, ...] = ()  # the TCP ports it reaches the node on (SSH, libvirt)

    def __post_init__(self) -> None:
        for source in self.control_sources:
            ipaddress.ip_network(source, strict=False)
        if not all(1 <= port <= 65535 for port in self.control_ports):
            raise ValueError("a control port is within 1-65535")


KEY_ID_PATTERN = re.compile(r"^[A-Za-z0-9:*_.-]+$")  # shell patterns the principals command may safely hold


@dataclass(frozen=True)
class GuestSshTrust:
    """What a guest's SSH server needs to accept certificates of Cloudlet's SSH CA (images that run cloud-init).

    The guest trusts ca_keys (OpenSSH lines), refuses what revoked_keys (an OpenSSH KRL) lists, and lets a
    certificate log in as the users it names only when its key id matches one of key_ids (shell patterns).
    """

    ca_keys: str
    revoked_keys: bytes
    key_ids: tuple[str, ...]

    def __post_init__(self) -> None:
        if not all(KEY_ID_PATTERN.match(pattern) for pattern in self.key_ids):
            raise ValueError("a key id pattern holds letters, digits and ':*_.-' only")


@dataclass(frozen=True)
class GuestSpec:
    """Everything a node needs to build one guest; two equal specs build the same guest."""

    name: str  # stable and unique on the node, chosen by the control plane
    image: str  # name of a base image on the node
    vcpus: int
    memory_mib: int
    disk_gib: int
    hostname: str
    root_password: str | None = None
    ssh_authorized_keys: tuple[str, ...] = ()
    network: GuestNetwork | None = None
    instance_id: str = ""  # NoCloud instance-id; defaults to name
    ssh_trust: GuestSshTrust | None = None
    bandwidth_mbit: int | None = None  # the NIC's cap each way (Mbit/s); None: uncapped (see set_bandwidth)

    def __post_init__(self) -> None:
        if not NAME_PATTERN.match(self.name):
            raise ValueError(f"guest name {self.name!r} must be lowercase letters, digits and dashes")
        if not HOSTNAME_PATTERN.match(self.hostname) or len(self.hostname) > 253:
            raise ValueError(f"hostname {self.hostname!r} is not a valid host name")
        if self.vcpus < 1 or self.memory_mib < 64 or self.disk_gib < 1:
            raise ValueError("a guest needs at least 1 vCPU, 64 MiB of memory and 1 GiB of disk")
        for key in self.ssh_authorized_keys:
            if "\n" in key or "'" in key:
                raise ValueError("an SSH key is a single line without quotes")
        if self.root_password is not None and "\n" in self.root_password:
            raise ValueError("a root password is a single line")
        if self.bandwidth_mbit is not None and not 1 <= self.bandwidth_mbit <= MAX_BANDWIDTH_MBIT:
            raise ValueError(f"a bandwidth cap is 1 to {MAX_BANDWIDTH_MBIT} Mbit/s")
        if not self.instance_id:
            object.__setattr__(self, "instance_id", self.name)

    @property
    def mac_address(self) -> str:
        """A MAC address derived from the name, so a rebuilt guest keeps its link-layer identity."""
        import hashlib

        digest = hashlib.sha256(self.name.encode()).digest()
        return "52:54:00:" + ":".join(f"{byte:02x}" for byte in digest[:3])


class GuestReady(NamedTuple):
    """What a booted guest announced once its seed was applied."""

    instance_id: str
    hostname: str
    address: str | None  # the static address it configured, if any
    authorized_keys: int  # how many SSH keys root now has
    root_password_set: bool


class GuestInfo(NamedTuple):
    """One guest's size and power state (in a node's listing, or from hardware())."""

    name: str
    state: GuestState
    vcpus: int
    memory_mib: int


class GuestStats(NamedTuple):
    """Cumulative counters of a guest at one moment; rates come from two samples."""

    sampled_at: datetime
    cpu_time_ns: int
    vcpus: int
    memory_mib: int  # what the guest was given
    memory_used_mib: int | None  # what it uses, when the balloon driver reports it
    disk_read_bytes: int
    disk_write_bytes: int
    disk_read_requests: int
    disk_write_requests: int
    disk_capacity_bytes: int
    disk_allocation_bytes: int
    net_rx_bytes: int
    net_tx_bytes: int
    net_rx_packets: int
    net_tx_packets: int


class ImageInfo(NamedTuple):
    """A base image on a node."""

    name: str
    virtual_size_bytes: int
    allocation_bytes: int


@dataclass
class ConsoleOutput:
    """A guest's serial console output: since it last (re)started (console_output), or across boots (console_history).

    truncated says that older output was dropped to keep within a bound (see CONSOLE_HISTORY_BYTES).
    """

    text: str
    truncated: bool = False
    lines: list[str] = field(default_factory=list)


# --- the console history: what a guest printed across its boots, bounded ------------------------------------------

CONSOLE_HISTORY_BYTES = 1024 * 1024  # what console_history keeps of a guest at most (UTF-8), the oldest dropped first
HISTORY_DROPPED = "-- cloudlet: older console output dropped --"  # the first line of a history that lost its start
BootEvent = Literal["started", "rebooted", "restored from a snapshot"]
BOOT_SEPARATOR = re.compile(r"^-- cloudlet: guest (started|rebooted|restored from a snapshot) at (\S+) --$")


def boot_separator(event: BootEvent, at: datetime) -> str:
    """The line that marks in a console history where a boot began, how and when (UTC, to the second)."""
    return f"-- cloudlet: guest {event} at {at.astimezone(UTC):%Y-%m-%dT%H:%M:%SZ} --"


def keep_last(text: str, limit: int = CONSOLE_HISTORY_BYTES) -> str:
    """text when it fits in limit bytes (UTF-8); otherwise HISTORY_DROPPED and then the last whole lines that fit.

    A single line longer than the room left is cut at its start (the newest bytes are the ones kept).
    """
    data = text.encode()
    if len(data) <= limit:
        return text
    marker = (HISTORY_DROPPED + "\n").encode()
    cut = len(data) - max(0, limit - len(marker))
    tail = data[cut:]
    newline = tail.find(b"\n")
    if data[cut - 1:cut] != b"\n" and 0 <= newline < len(tail) - 1:  # begin at the first whole line that fits
        tail = tail[newline + 1:]
    return marker.decode() + tail.decode(errors="ignore")  # a multi-byte character cut in two is left out


def history_after_boot(history: str, finished: str, event: BootEvent, at: datetime) -> str:
    """The archived console history once a new boot begins: the finished boot's output appended, then (when
    there is any history at all) the separator of the new boot; bounded by keep_last."""
    archived = history + finished
    if archived and not archived.endswith("\n"):
        archived += "\n"  # the finished boot may end mid-line: the separator gets a line of its own
    if archived:
        archived += boot_separator(event, at) + "\n"
    return keep_last(archived)


def history_output(archived: str, current: str) -> ConsoleOutput:
    """What console_history answers: the archived boots and the current boot's output, bounded by keep_last."""
    text = keep_last(archived + current)
    return ConsoleOutput(text=text, truncated=text.startswith(HISTORY_DROPPED + "\n"), lines=text.splitlines())


VNC_PASSWORD_MAX = 8  # VNC authentication (RFB's DES challenge) uses the first 8 bytes of a password


class VncEndpoint(NamedTuple):
    """Where the control plane opens a TCP connection to a guest's VNC server (RFB, asking for VNC auth)."""

    host: str
    port: int


class SerialConsole(Protocol):
    """An open session on a running guest's serial console; a guest has at most one at a time."""

    def read(self, timeout: float) -> bytes:
        """What the guest wrote since the last read, waiting up to timeout seconds for something (b"" if nothing).

        Raises ConsoleClosed once the session has ended and everything it received has been read.
        """
        ...

    def write(self, data: bytes) -> None:
        """Send bytes (keystrokes) to the guest's serial port. Raises ConsoleClosed once the session has ended."""
        ...

    def close(self) -> None:
        """End the session and free what it holds (its connection and reader). Idempotent."""
        ...


class HypervisorDriver(Protocol):
    """What the worker may ask of a node. Hypervisor ids never leave the driver.

    Every method may raise NodeUnreachable (the node cannot be reached: try later or elsewhere) and
    RetryLater (the node is busy: the same call may succeed after `after` seconds).
    """

    capabilities: Capabilities

    def import_image(self, name: str, source: Path) -> ImageInfo:
        """Copy a qcow2 (or raw) file into the node as base image `name`.

        Idempotent: an image of that name that already exists with the same size is kept as it is.
        On failure the partly copied volume is removed before raising. Raises GuestFailed when the
        file is not a disk image.
        """
        ...

    def list_images(self) -> list[ImageInfo]:
        """The base images on the node, by name. Read-only."""
        ...

    def delete_image(self, name: str) -> None:
        """Remove base image `name`. A missing image is fine; guests already built keep working
        only if the driver's overlays do not depend on it, so callers delete unused images only."""
        ...

    def apply_firewalls(self, firewalls: Sequence[AddressFirewall]) -> None:
        """Make these the only address firewalls of the node's guests, enforced in the node's kernel on the path
        to and from each guest, whatever the guest does. All at once: on failure (GuestFailed) the firewalls
        before stay whole. Idempotent."""
        ...

    def firewalls_in_force(self, firewalls: Sequence[AddressFirewall]) -> bool:
        """Whether the node's kernel enforces exactly these firewalls now, as apply_firewalls left them: False when
        its table is missing or was changed behind Cloudlet's back. Read-only. Raises GuestFailed when the node
        cannot say."""
        ...

    def firewall_hits(self) -> dict[str, FirewallHits]:
        """By address, what each rule and the inbound policy of the firewalls apply_firewalls last wrote have
        matched since (the node's own counters). Read-only. Raises GuestFailed when the node cannot say."""
        ...

    def firewall_traffic(self) -> dict[str, AddressTraffic]:
        """By address of the firewalls apply_firewalls last wrote, what reached it (the node's own counters).
        Read-only. Raises GuestFailed when the node cannot say."""
        ...

    def set_bandwidth(self, name: str, mbit: int | None) -> None:
        """Cap the guest's NIC at mbit Mbit/s each way (to the guest and from it), or lift its cap (None); the
        node's kernel shapes the traffic on the guest's side of the node (its tap), whatever the guest does.

        A running guest's traffic is shaped at once, and the cap stays through restarts, reboots and a resize
        until it is changed again (define_guest gives a new guest spec.bandwidth_mbit). Idempotent. Nothing to
        clean up: a failed call leaves the cap before. Raises GuestNotFound, GuestFailed when the node refuses.
        """
        ...

    def bandwidth(self, name: str) -> int | None:
        """The cap (Mbit/s) of the guest's NIC as the node holds it; None when uncapped. Read-only. Raises
        GuestNotFound."""
        ...

    def apply_node_firewall(self, firewall: NodeFirewall) -> None:
        """Make this the node's own inbound firewall, in the node's kernel, all at once: on failure (GuestFailed)
        the firewall before stays whole. A firewall without rules removes the node's table (there is nothing to
        enforce). Idempotent. Raises GuestFailed for a node whose kernel this control plane cannot write."""
        ...

    def node_firewall_in_force(self, firewall: NodeFirewall) -> bool:
        """Whether the node's kernel holds exactly this firewall now, as apply_node_firewall left it: False when its
        table is missing or was changed behind Cloudlet's back. Read-only. Raises GuestFailed when the node cannot
        say."""
        ...

    def serve_gateways(self, gateways: frozenset[str]) -> None:
        """Hold these gateway addresses ("203.0.113.1", "2001:db8::1") on the node's side of the guests' network,
        so that the guests of every address pool it serves reach it (each guest's own address is routed to that
        network when its seed is written, and no longer once the guest is destroyed; nothing else of a pool's
        range is taken from the node's other networks).

        Idempotent; addresses it holds already, or that it was given before, stay."""
        ...

    def define_guest(self, spec: GuestSpec) -> None:
        """Make the guest's disk (an overlay of spec.image grown to spec.disk_gib) and its definition
        (vCPUs, memory, disk, NIC capped at spec.bandwidth_mbit, logged serial console, VNC), without a seed and
        without starting it.

        Idempotent on spec.name: a guest already defined with the same spec is left alone, whatever its
        power state (but for its NIC's cap, which becomes spec.bandwidth_mbit: the cap is not part of what a
        spec defines, set_bandwidth changes it); one with a different spec raises GuestFailed. A guest's spec
        is the one it was defined with, or the one last given to write_seed. On failure, everything this call
        made (disk, definition) is removed before raising. Raises ImageNotFound (leaving nothing behind) when
        spec.image is not on the node, GuestFailed when the disk is smaller than the image.
        """
        ...

    def write_seed(self, spec: GuestSpec) -> None:
        """Build the NoCloud seed of spec (hostname, root password, SSH keys, static address) and store
        it as the guest's seed, replacing the one it had; the guest's spec becomes spec.

        Used on the first build, and later on reinstall or password reset. A running guest keeps
        running on what it applied already and reads the new seed at its next boot: a start, or a
        reboot (the seed is rewritten in place, so the running machine sees it when it restarts).
        Idempotent: writing the same spec again changes nothing the guest would see.
        Raises GuestNotFound when the guest is not defined and GuestFailed when spec's definition
        (image, vCPUs, memory, disk) differs from the guest's; both before anything is changed. Any
        later failure (GuestFailed when a running guest's seed disk is too small for the new seed:
        power it off first) leaves the guest without a seed: start then raises GuestFailed until a
        write_seed succeeds.
        """
        ...

    def resize_guest(self, spec: GuestSpec) -> None:
        """Give the defined guest spec's vCPUs and memory and grow its disk to spec.disk_gib; the guest's
        spec becomes spec (its seed is not rewritten: write_seed does that).

        The disk grows at once (a running guest sees the bigger disk without a restart); vCPUs and memory
        apply at the guest's next boot: a start, or a reboot, which powers a guest whose hardware changed
        off and on again; the NIC's cap becomes spec.bandwidth_mbit at once (set_bandwidth). Idempotent: resizing
        to the size held changes nothing. Raises GuestNotFound,
        and GuestFailed (before anything is changed) when spec names another image or a smaller disk.
        A failure part way leaves a guest that a repeat of the same call finishes resizing.
        """
        ...

    def create_guest(self, spec: GuestSpec) -> None:
        """Build and start the guest described by spec: define_guest, write_seed, then start.

        Idempotent on spec.name: a guest that already exists with the same spec is started (with a
        freshly written seed) if it is off and otherwise left alone; one with a different spec raises
        GuestFailed. On failure, everything this call made (disk, seed, definition) is removed before
        raising; a guest that existed before the call is kept. Raises ImageNotFound when spec.image is
        not on the node.
        """
        ...

    def hardware(self, name: str) -> GuestInfo:
        """The defined guest's vCPUs, memory (MiB) and power state as the hypervisor reports them.

        Read-only. Raises GuestNotFound.
        """
        ...

    def wait_ready(self, name: str, timeout: float) -> GuestReady:
        """Wait until the guest announces, on its serial console, that its seed is applied.

        Read-only and safe to repeat. Raises GuestFailed when the guest stops or the timeout passes
        first (with the console's last lines in the reason), GuestNotFound when it does not exist.
        """
        ...

    def agent_ping(self, name: str) -> bool:
        """Whether the guest's QEMU guest agent answers now: False while it is not up yet, when the guest is not
        running, or when its image has no agent. Read-only. Raises GuestNotFound."""
        ...

    def set_password(self, name: str, user: str, password: str) -> None:
        """Set a user's password inside the running guest through its guest agent, at once and without a
        restart. Raises GuestFailed when the guest is not running or its agent does not answer or refuses."""
        ...

    def write_guest_file(self, name: str, path: str, data: bytes, mode: int) -> None:
        """Replace the file at the absolute path inside the running guest with data (parent directories made,
        permissions mode, owned as the file it replaces, by root when new) through its guest agent. Idempotent;
        the file is written aside and renamed over the old one, so the guest never reads half of it. Raises
        GuestFailed when the guest is not running or its agent does not answer or refuses, GuestNotFound."""
        ...

    def locate_guest_path(self, name: str, path: str) -> GuestLocation:
        """Where an absolute path leads inside the running guest (symlinks resolved, as `realpath -m`), what is
        there, and what the path itself is (lstat). Read-only. Raises GuestFailed when the guest is not running or
        its agent does not answer."""
        ...

    def list_guest_dir(self, name: str, path: str, limit: int) -> tuple[list[GuestPath], bool]:
        """The entries of a directory inside the running guest, by name, at most limit of them, and whether
        there were more. Read-only. Raises GuestFailed (not a directory, no agent), GuestNotFound."""
        ...

    def read_guest_file(self, name: str, path: str, limit: int) -> bytes:
        """The content of a regular file inside the running guest. Read-only. Raises GuestFailed when it is
        larger than limit bytes, not a readable regular file, or the agent does not answer; GuestNotFound."""
        ...

    def make_guest_dir(self, name: str, path: str) -> None:
        """Make a directory (and its parents) inside the running guest. Idempotent. Raises GuestFailed."""
        ...

    def run_in_guest(self, name: str, command: str, timeout: float, output_cap: int) -> CommandRun:
        """Run command with /bin/sh as root inside the running guest through its guest agent, its stderr joined to
        its stdout, and say what it did; nothing runs on the node itself. A non-zero exit is a result, not an
        error. The guest kills the command at timeout seconds (then timed_out is true and exit_status None). At
        most output_cap bytes of its output are kept, fewer where the driver cannot carry that many (truncated
        says that more was cut off).

        Not idempotent: the command runs at each call. Nothing to clean up: a command past its timeout is killed
        inside the guest. Raises ValueError (before the guest is asked) for a command that is empty or longer
        than MAX_COMMAND_BYTES (check_command), GuestFailed when the guest is not running, has no agent or its
        agent refuses, GuestNotFound."""
        ...

    def move_guest_path(self, name: str, source: str, target: str) -> None:
        """Rename source to target inside the running guest (target must not be a non-empty directory; the
        caller checks what is there first). Raises GuestFailed, GuestNotFound."""
        ...

    def remove_guest_path(self, name: str, path: str) -> None:
        """Remove a file, symlink or directory (with everything in it) inside the running guest. Idempotent:
        nothing there is no error. Raises GuestFailed, GuestNotFound."""
        ...

    def ssh_banner(self, name: str, address: str, timeout: float) -> str | None:
        """The greeting of the SSH server at the guest's address, port 22, reached from the node over its own
        network and waited for up to timeout seconds; None when this process cannot reach that network (a
        remote node). Read-only. Raises GuestFailed when nothing answers in time, GuestNotFound."""
        ...

    def state(self, name: str) -> GuestState:
        """The guest's power state now. Read-only. Raises GuestNotFound."""
        ...

    def start(self, name: str) -> None:
        """Power the guest on. Idempotent: a running guest is left alone.

        Raises GuestNotFound, and GuestFailed ("no seed written") when write_seed never succeeded for
        the guest since it was defined (or since a write_seed failed).
        """
        ...

    def shutdown(self, name: str, timeout: float = 60.0) -> None:
        """Ask the guest to shut down (ACPI power button) and wait; power it off if it has not
        stopped within timeout. Idempotent: a stopped guest is fine. Raises GuestNotFound."""
        ...

    def reboot(self, name: str) -> None:
        """Ask the guest to restart (ACPI); a stopped guest is started instead (see start).

        A guest whose vCPUs or memory were changed (resize_guest) since it started is shut down (its power
        cut after 60 s) and started again instead, so that it boots with them.
        Returns once the restart is asked for; wait_ready tells when it is back. Raises GuestNotFound.
        """
        ...

    def poweroff(self, name: str) -> None:
        """Cut the guest's power at once (no shutdown inside). Idempotent. Raises GuestNotFound."""
        ...

    def console_output(self, name: str) -> ConsoleOutput:
        """The serial console's output since the guest last started. Read-only. Raises GuestNotFound."""
        ...

    def console_history(self, name: str) -> ConsoleOutput:
        """The serial console's output across the guest's boots (those before included), oldest first.

        Every start, reboot or revert to a snapshot with memory keeps the output of the boot that ends; the text
        is the kept boots, then the current boot's output (console_output). Each boot but the first in the text
        begins with a boot_separator line (BOOT_SEPARATOR), which says how and when it began. At most the last
        CONSOLE_HISTORY_BYTES are kept: older output is dropped first, and the text then begins with the line
        HISTORY_DROPPED (truncated is true). Kept until clear_console or destroy_guest. Read-only. Raises
        GuestNotFound.
        """
        ...

    def clear_console(self, name: str) -> None:
        """Forget the guest's console output: its history and the current boot's log (what it prints later is kept).

        A running guest keeps running; as console_output then holds only what it printed after the clear, a
        wait_ready for the boot in progress no longer finds its readiness line, so callers clear only while no
        action waits on the guest. Idempotent. Raises GuestNotFound.
        """
        ...

    def vnc_console(self, name: str, password: str, valid_until: datetime) -> VncEndpoint:
        """Give the running guest's VNC server a new password, accepted until valid_until, and say where it listens.

        The password (1 to VNC_PASSWORD_MAX characters) replaces the one before: links handed out earlier stop
        working, sessions already connected stay. It lasts until valid_until or until the guest powers off,
        whichever comes first (a reboot inside the guest keeps it); a guest starts with a random password nobody
        knows, so its VNC server never runs without one. Idempotent: the same password and time again change
        nothing. Nothing to clean up: a failed call leaves the previous password in place. Only where
        capabilities.vnc_console is true can the control plane reach the endpoint. Raises GuestNotFound, and
        GuestFailed when the guest is not running, its VNC server cannot take a password, or the node's VNC
        cannot be reached from the control plane.
        """
        ...

    def open_serial(self, name: str) -> SerialConsole:
        """Attach to the running guest's serial console (what `virsh console` shows), interactive.

        A session open before is taken over: its reads and writes raise ConsoleClosed. What the guest prints
        still goes to its console log (console_output). The caller closes the session; one whose guest stops
        ends by itself (ConsoleClosed). On failure nothing is left open. Raises GuestNotFound, and GuestFailed
        when the guest is not running.
        """
        ...

    def stats(self, name: str) -> GuestStats:
        """Cumulative CPU, memory, disk and network counters of a guest. Read-only.

        A stopped guest reports zero activity counters and its disk sizes. Raises GuestNotFound.
        """
        ...

    def list_guests(self) -> list[GuestInfo]:
        """The guests this control plane made on the node (others are ignored). Read-only."""
        ...

    def destroy_guest(self, name: str) -> None:
        """Power off and remove the guest, its disk overlay, its seed, its console log and its console history.

        Idempotent: a guest that is already gone (or half gone) is fine; whatever is left is removed.
        """
        ...

    def create_snapshot(self, name: str, snapshot: str, *, include_ram: bool) -> None:
        """Take an internal snapshot called `snapshot` (SNAPSHOT_PATTERN) of the guest's disk, running or not.

        With include_ram and a running guest the snapshot also holds its memory, and revert_snapshot brings it
        back running where it was; otherwise the snapshot stands for the disk alone. Idempotent: a snapshot of
        that name that exists already is kept as it is. A failed call leaves no snapshot behind. Raises
        GuestNotFound.
        """
        ...

    def revert_snapshot(self, name: str, snapshot: str) -> None:
        """Bring the guest's disk back to the snapshot (its memory too if it was taken with include_ram).

        A snapshot with memory leaves the guest running from it; any other leaves the guest off with the
        snapshot's disk (the caller boots it). Reverting again gives the same result. Raises GuestNotFound,
        and GuestFailed when the snapshot does not exist.
        """
        ...

    def delete_snapshot(self, name: str, snapshot: str) -> None:
        """Remove the snapshot and the room it holds. Idempotent: a missing snapshot is fine. Raises GuestNotFound."""
        ...

    def list_snapshots(self, name: str) -> list[str]:
        """The names of the guest's snapshots, sorted. Read-only. Raises GuestNotFound."""
        ...

    def export_disk(self, name: str, destination: Path) -> None:
        """Write a consistent, compressed, self-contained qcow2 copy of the guest's whole disk to destination.

        A running guest is paused (its writes flushed) for the copy and resumed after it, even when the copy
        fails; a stopped one is copied as it is. Idempotent (the file is written anew). On failure no partial
        file is left at destination. Raises GuestNotFound.
        """
        ...

    def import_disk(self, name: str, source: Path) -> None:
        """Replace the content of the stopped guest's disk with the qcow2 at source (a copy export_disk made).

        Its snapshots are kept. Idempotent: importing the same file again gives the same disk. Raises
        GuestNotFound, and GuestFailed (before changing anything) when the guest is not off, the file is not a
        qcow2 image, or it is bigger than the guest's disk.
        """
        ...
