"""Make this machine a hypervisor node: packages, libvirtd, the storage pool, the isolated bridge, and a
probe of whether KVM really runs a guest here or TCG must be used.

Every step checks before it acts, so a second run changes nothing and takes about a second.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from cloudlet.drivers.libvirt import firewall, host
from cloudlet.images import build
from cloudlet.nodes.service import facts_dir

HYPERVISOR_PACKAGES = (
    "qemu-system-x86", "qemu-utils", "libvirt-daemon", "libvirt-daemon-driver-qemu", "libvirt-clients",
    "libvirt-dev", "pkg-config", "iproute2", "iptables", "dnsmasq-base", "nftables",
)
IMAGE_PACKAGES = ("syslinux", "syslinux-common", "mtools", "dosfstools", "fdisk", "cpio", "mmdebstrap", "e2fsprogs")
QEMU_CONF = Path("/etc/libvirt/qemu.conf")
BLOCK_START, BLOCK_END = "# --- cloudlet: begin ---", "# --- cloudlet: end ---"
# root inside a container: no separate qemu user, no AppArmor, and no virtlogd to keep console logs
QEMU_SETTINGS = ('user = "root"', 'group = "root"', 'stdio_handler = "file"', 'security_driver = "none"',
                 "remember_owner = 0")
LIBVIRTD_PID = Path("/var/run/libvirtd.pid")
PROBE_LINE = "CLOUDLET_PROBE_OK"


@dataclass
class Preparation:
    """What `cloudlet node prepare` found and did."""

    installed_packages: list[str] = field(default_factory=list)
    libvirtd_started: bool = False
    pool_changed: bool = False
    network_changed: bool = False
    pool_path: Path | None = None
    facts: host.NodeFacts | None = None
    probed: bool = False


QUICK_TOOL_SECONDS = 60  # dpkg-query, id, useradd, libvirtd -d (which forks and returns)
APT_TIMEOUT_SECONDS = 1800  # a slow mirror; a stalled one fails the preparation instead of hanging it


def missing_packages(names: tuple[str, ...]) -> list[str]:
    """The Debian packages of names that are not installed."""
    missing = []
    for name in names:
        result = subprocess.run(["dpkg-query", "-W", "-f=${Status}", name], capture_output=True,  # noqa: S603, S607
                                text=True, check=False, timeout=QUICK_TOOL_SECONDS)
        if "install ok installed" not in result.stdout:
            missing.append(name)
    return missing


def install_packages(names: list[str]) -> None:
    """apt-get install names (no recommends) from the configured Debian mirror."""
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env, capture_output=True,  # noqa: S607
                   timeout=APT_TIMEOUT_SECONDS)
    subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *names],  # noqa: S603, S607
                   check=True, env=env, capture_output=True, timeout=APT_TIMEOUT_SECONDS)


def configure_qemu(conf: Path = QEMU_CONF) -> bool:
    """Put Cloudlet's block into qemu.conf; whether the file changed."""
    text = conf.read_text() if conf.exists() else ""
    if BLOCK_START in text:
        before, _, rest = text.partition(BLOCK_START)
        after = rest.partition(BLOCK_END)[2]
        text = before.rstrip("\n") + ("\n" if before.strip() else "") + after.lstrip("\n")
    block = "\n".join((BLOCK_START, *QEMU_SETTINGS, BLOCK_END)) + "\n"
    wanted = (text.rstrip("\n") + "\n\n" if text.strip() else "") + block
    if conf.exists() and conf.read_text() == wanted:
        return False
    conf.parent.mkdir(parents=True, exist_ok=True)
    conf.write_text(wanted)
    return True


def ensure_qemu_user() -> None:
    """libvirtd refuses to start without the libvirt-qemu user the Debian package normally makes."""
    if subprocess.run(["id", "libvirt-qemu"], capture_output=True, check=False,  # noqa: S607
                      timeout=QUICK_TOOL_SECONDS).returncode != 0:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",  # noqa: S607
                        "libvirt-qemu"], check=True, capture_output=True, timeout=QUICK_TOOL_SECONDS)


def libvirtd_pid() -> int | None:
    """The pid of the running libvirtd, from its pid file."""
    try:
        pid = int(LIBVIRTD_PID.read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if Path(f"/proc/{pid}").exists() else None


def start_libvirtd(restart: bool) -> bool:
    """Start libvirtd as a daemon (restarting it when its config changed); whether it was (re)started."""
    for directory in ("/var/log/libvirt", "/var/run/libvirt", "/var/lib/libvirt/dnsmasq"):
        Path(directory).mkdir(parents=True, exist_ok=True)
    pid = libvirtd_pid()
    if pid is not None and not restart:
        return False
    if pid is not None:
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
    subprocess.run(["libvirtd", "-d"], check=True, capture_output=True, timeout=QUICK_TOOL_SECONDS)  # noqa: S607
    deadline = time.monotonic() + 20
    while True:
        try:
            host.connect().close()
            return True
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def boot_probe(kernel: Path, initramfs: Path, accel: str, timeout: float) -> float | None:
    """Boot kernel + initramfs under accel ("kvm" or "tcg"); seconds to userspace, or None if it hung."""
    command = ["qemu-system-x86_64", "-machine", f"pc,accel={accel}", "-m", "256", "-nodefaults", "-no-reboot",
               "-display", "none", "-serial", "stdio", "-kernel", str(kernel), "-initrd", str(initramfs),
               "-append", "console=ttyS0 panic=-1 quiet"]
    started = time.monotonic()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)  # noqa: S603
    if process.stdout is None:  # cannot happen with stdout=PIPE; keeps the type checker honest
        raise RuntimeError("qemu has no stdout")
    os.set_blocking(process.stdout.fileno(), False)
    seen = b""
    try:
        while time.monotonic() - started < timeout:
            chunk = process.stdout.read()
            if chunk:
                seen += chunk
                if PROBE_LINE.encode() in seen:
                    return time.monotonic() - started
            elif process.poll() is not None:
                return None
            time.sleep(0.05)
        return None
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()


def probe(cache_dir: Path, timeout: float = 10.0) -> host.NodeFacts:
    """Boot the cloud kernel for real under KVM; fall back to TCG when KVM is absent or hangs."""
    parts = build.fetch_parts(cache_dir)
    with tempfile.TemporaryDirectory(prefix="cloudlet-probe-") as tmp:
        initramfs = build.build_initramfs(parts, Path(tmp) / "probe.img", init=build.PROBE_INIT)
        if Path("/dev/kvm").exists():
            seconds = boot_probe(parts.kernel, initramfs, "kvm", timeout)
            if seconds is not None:
                return host.NodeFacts("kvm", round(seconds, 2))
        seconds = boot_probe(parts.kernel, initramfs, "tcg", timeout * 4)
        if seconds is None:
            raise RuntimeError("the probe guest did not boot under TCG either; QEMU is not usable here")
        return host.NodeFacts("qemu", round(seconds, 2))


def prepare_node(data_dir: Path, *, install: bool = True, reprobe: bool = False,
                 say: Callable[[str], None] = lambda _message: None) -> Preparation:
    """Make this machine a node: packages, libvirtd, pool and network, and the KVM/TCG probe."""
    done = Preparation()
    if install:
        missing = missing_packages(HYPERVISOR_PACKAGES + IMAGE_PACKAGES)
        if missing:
            say(f"installing Debian packages: {' '.join(missing)}")
            install_packages(missing)
            done.installed_packages = missing
    if shutil.which("libvirtd") is None:
        raise RuntimeError("libvirtd is not installed; run without --no-install")
    ensure_qemu_user()
    changed = configure_qemu()
    done.libvirtd_started = start_libvirtd(restart=changed)
    if done.libvirtd_started:
        say("libvirtd started")
    firewall.bridge_to_ip_hooks()  # guests' address firewalls filter bridged traffic in the IP hooks
    pool_dir = data_dir / "pool"
    conn = host.connect()
    try:
        done.pool_changed = host.ensure_pool(conn, pool_dir)
        done.network_changed = host.ensure_network(conn)
        done.pool_path = host.pool_path(conn)
    finally:
        conn.close()
    # The facts go where `serve` looks for them (facts_dir), not beside the pool: the pool may be
    # another installation's on this host, and then `serve` would never register this node.
    node_dir = facts_dir(data_dir)
    facts = host.read_facts(node_dir)
    if facts is None or reprobe:
        say("probing KVM with a real boot (falls back to TCG)")
        facts = probe(data_dir / "cache")
        host.write_facts(node_dir, facts)
        done.probed = True
    done.facts = facts
    return done
