"""The libvirt connection of one node, error translation, and the node-wide objects (pool, network)."""

from __future__ import annotations

import contextlib
import ipaddress
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

import libvirt

from cloudlet.drivers.base import GuestFailed, NodeUnreachable, RetryLater

LOCAL_URI = "qemu:///system"
POOL_NAME = "cloudlet"
NETWORK_NAME = "cloudlet0"
# documentation ranges only (never routed anywhere); the first that no host interface or route uses
NETWORK_CANDIDATES = ("198.51.100.1/24", "203.0.113.1/24", "192.0.2.1/24")
NODE_FILE = "node.json"  # beside the pool directory: what `cloudlet node prepare` found

_UNREACHABLE = {libvirt.VIR_ERR_NO_CONNECT, libvirt.VIR_ERR_RPC, libvirt.VIR_ERR_AUTH_FAILED}
_BUSY = {libvirt.VIR_ERR_OPERATION_TIMEOUT, libvirt.VIR_ERR_AGENT_UNRESPONSIVE}

# libvirt prints every error to stderr before raising it; we raise our own errors instead
libvirt.registerErrorHandler(lambda _ctx, _err: None, None)


class NodeFacts(NamedTuple):
    """What node preparation measured: the domain type that really boots and how long a boot took."""

    domain_type: str  # "kvm" or "qemu" (TCG)
    boot_seconds: float


def translate(error: libvirt.libvirtError) -> Exception:
    """Our typed error for a libvirt error: unreachable node, busy node, or a failed guest."""
    code = error.get_error_code()
    message = error.get_error_message() or str(error)
    lowered = message.lower()
    if code in _UNREACHABLE or (code in (libvirt.VIR_ERR_SYSTEM_ERROR, libvirt.VIR_ERR_INTERNAL_ERROR)
                                and ("connect" in lowered or "socket" in lowered)):
        return NodeUnreachable(message)
    if code in _BUSY or "state change lock" in message or "asynchronous jobs running" in message:
        return RetryLater(message, after=2.0)
    return GuestFailed(message)


@contextmanager
def translated() -> Iterator[None]:
    """Run a block of libvirt calls, raising our typed errors instead of libvirtError."""
    try:
        yield
    except libvirt.libvirtError as error:
        raise translate(error) from error


# A node that stops answering is noticed after about INTERVAL * (COUNT + 1) seconds: libvirt then closes the
# connection and every call on it (and every call waiting on it) fails instead of waiting forever.
KEEPALIVE_INTERVAL_SECONDS = 5
KEEPALIVE_COUNT = 3

_event_loop_lock = threading.Lock()
_event_loop_started = False


def _run_event_loop() -> None:
    while True:
        libvirt.virEventRunDefaultImpl()


def ensure_event_loop() -> None:
    """Register and run libvirt's default event loop (once per process): keepalive needs one."""
    global _event_loop_started
    with _event_loop_lock:
        if _event_loop_started:
            return
        libvirt.virEventRegisterDefaultImpl()
        threading.Thread(target=_run_event_loop, name="cloudlet-libvirt-events", daemon=True).start()
        _event_loop_started = True


def connect(uri: str = LOCAL_URI) -> libvirt.virConnect:
    """Open a connection to a node's libvirtd, with keepalive; NodeUnreachable when it does not answer."""
    ensure_event_loop()
    try:
        conn = libvirt.open(uri)
    except libvirt.libvirtError as error:
        raise NodeUnreachable(f"libvirt at {uri} is not reachable: {error.get_error_message()}") from error
    with contextlib.suppress(libvirt.libvirtError):  # a driver without keepalive (test:///) never crosses a network
        conn.setKeepAlive(KEEPALIVE_INTERVAL_SECONDS, KEEPALIVE_COUNT)
    return conn


def pool_xml(path: Path) -> str:
    """A directory storage pool named "cloudlet" at path."""
    return f"<pool type='dir'><name>{POOL_NAME}</name><target><path>{path}</path></target></pool>"


def free_documentation_range() -> str:
    """The host address (with prefix) of the first candidate range that this host does not use already."""
    import ipaddress
    import subprocess

    used = []
    for command in (["ip", "-o", "-4", "addr", "show"], ["ip", "-o", "-4", "route", "show"]):
        output = subprocess.run(command, capture_output=True, text=True, check=False,  # noqa: S603
                                timeout=30).stdout
        for word in output.split():
            try:
                used.append(ipaddress.ip_network(word, strict=False))
            except ValueError:
                continue
    for candidate in NETWORK_CANDIDATES:
        network = ipaddress.ip_interface(candidate).network
        if not any(network.overlaps(other) for other in used if other.prefixlen > 0):
            return candidate
    raise GuestFailed("every documentation range is already in use on this host; no isolated bridge possible")


def network_xml(cidr: str) -> str:
    """An isolated network: a bridge with an address on the host and no <forward>, so no route out.

    No DHCP and no DNS either: guests get static addresses from their seed.
    """
    address, prefix = cidr.split("/")
    return (f"<network><name>{NETWORK_NAME}</name><bridge name='{NETWORK_NAME}' stp='off' delay='0'/>"
            f"<dns enable='no'/><ip address='{address}' prefix='{prefix}'/></network>")


def ensure_pool(conn: libvirt.virConnect, path: Path) -> bool:
    """Define, build and start the "cloudlet" pool (autostarted); whether anything changed."""
    changed = False
    with translated():
        try:
            pool = conn.storagePoolLookupByName(POOL_NAME)
        except libvirt.libvirtError:
            path.mkdir(parents=True, exist_ok=True)
            pool = conn.storagePoolDefineXML(pool_xml(path), 0)
            changed = True
        if not pool.isActive():
            pool.create(0)
            changed = True
        if not pool.autostart():
            pool.setAutostart(1)
            changed = True
    return changed


def ensure_network(conn: libvirt.virConnect) -> bool:
    """Define and start the isolated "cloudlet0" network (autostarted); whether anything changed."""
    changed = False
    with translated():
        try:
            network = conn.networkLookupByName(NETWORK_NAME)
        except libvirt.libvirtError:
            network = conn.networkDefineXML(network_xml(free_documentation_range()))
            changed = True
        if "<forward" in network.XMLDesc(0):
            raise GuestFailed(f"network {NETWORK_NAME} has a <forward> element: it must stay isolated")
        if not network.isActive():
            network.create()
            changed = True
        if not network.autostart():
            network.setAutostart(1)
            changed = True
    return changed


ROUTE_PROTO = "static"  # how the routes to guests are marked (`ip route show proto static dev cloudlet0`)
IP_TIMEOUT_SECONDS = 10  # `ip` answers in milliseconds; a hung netlink call must not hold a heartbeat


def _ip(*args: str) -> str:
    import subprocess

    try:
        result = subprocess.run(["ip", *args], capture_output=True, text=True, check=False,  # noqa: S603, S607
                                timeout=IP_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired as error:
        raise RetryLater(f"ip {args[0]} did not answer within {IP_TIMEOUT_SECONDS} s") from error
    if result.returncode != 0:
        raise GuestFailed(f"ip {' '.join(args)} failed: {result.stderr.strip()[-500:]}")
    return result.stdout


def bridge_addresses() -> set[str]:
    """The addresses (without prefix) the isolated network's bridge holds on this host."""
    words = _ip("-o", "addr", "show", "dev", NETWORK_NAME).split()
    return {words[at + 1].split("/")[0] for at, word in enumerate(words[:-1]) if word in {"inet", "inet6"}}


def _host_prefix(address: str) -> str:
    return f"{address}/{ipaddress.ip_address(address).max_prefixlen}"


def hold_gateways(gateways: set[str]) -> list[str]:
    """Give the bridge every gateway address it lacks, as a host address (/32, /128): guests on the bridge reach
    it, and no route to the gateway's whole network is made, so nothing else this host reaches in that range
    (a mirror, an uplink) is taken by the bridge. The ones added."""
    missing = sorted(gateways - bridge_addresses())
    for address in missing:
        _ip("addr", "add", _host_prefix(address), "dev", NETWORK_NAME)
    return missing


def _guest_route(verb: str, address: str, *more: str) -> str:
    family = "-6" if ":" in address else "-4"
    return _ip(family, "route", verb, _host_prefix(address), "dev", NETWORK_NAME, "proto", ROUTE_PROTO, *more)


def route_guest(address: str, gateway: str | None) -> None:
    """Route one guest address (and only it) to the bridge, from its gateway (which hold_gateways gave it)."""
    _guest_route("replace", address, *(["src", gateway] if gateway else []))


def unroute_guest(address: str) -> None:
    """Take a guest address's route to the bridge away; one already gone (a host restart, or another deletion of
    a guest that had the address, between the look and the deletion) is fine."""
    if not _guest_route("show", address).strip():
        return
    try:
        _guest_route("del", address)
    except GuestFailed as failure:
        if "No such process" not in failure.reason:  # the kernel's ESRCH: no such route (any more)
            raise


def routed_to_bridge(address: str) -> bool:
    """Whether this host sends packets for address into the isolated network (else they would go elsewhere)."""
    words = _ip("route", "get", address).split()
    return NETWORK_NAME in words[words.index("dev") + 1:words.index("dev") + 2] if "dev" in words else False


def network_address(conn: libvirt.virConnect) -> str:
    """The host's address on the isolated network, with its prefix (the guests' gateway)."""
    from xml.etree import ElementTree

    with translated():
        xml = conn.networkLookupByName(NETWORK_NAME).XMLDesc(0)
    ip = ElementTree.fromstring(xml).find("ip")  # noqa: S314  # libvirt's own XML
    if ip is None:
        raise GuestFailed(f"network {NETWORK_NAME} has no address")
    return f"{ip.get('address')}/{ip.get('prefix')}"


def pool_path(conn: libvirt.virConnect) -> Path:
    """The directory of the node's "cloudlet" pool."""
    from xml.etree import ElementTree

    with translated():
        xml = conn.storagePoolLookupByName(POOL_NAME).XMLDesc(0)
    target = ElementTree.fromstring(xml).findtext("target/path")  # noqa: S314  # libvirt's own XML
    if target is None:
        raise GuestFailed(f"pool {POOL_NAME} has no target path")
    return Path(target)


def read_facts(node_dir: Path) -> NodeFacts | None:
    """The facts node preparation wrote into node_dir, if it ran."""
    path = node_dir / NODE_FILE
    if not path.exists():
        return None
    data = json.loads(path.read_text())
    return NodeFacts(str(data["domain_type"]), float(data["boot_seconds"]))


def write_facts(node_dir: Path, facts: NodeFacts) -> None:
    """Record what node preparation measured, for the driver to read."""
    node_dir.mkdir(parents=True, exist_ok=True)
    (node_dir / NODE_FILE).write_text(json.dumps(facts._asdict(), indent=2) + "\n")
