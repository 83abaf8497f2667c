"""Time the Debian 12 image: its build, and its boot to SSH through Cloudlet's libvirt driver against a bare QEMU boot.

Run: `python -m bench.debian_image [--image FILE] [--runs 1]`.

Without --image it builds the image first (`cloudlet images build debian-12`'s code, from CLOUDLET_IMAGE_MIRROR,
with the packages cached in /var/lib/cloudlet/cache) and prints how long that took. Then, `--runs` times each:

- bare: `qemu-system-x86_64 -accel tcg` on a qcow2 overlay of the image with the same kind of NoCloud seed,
  QEMU's user network restricted to the host (no route out) and port 22 forwarded to a loopback port; timed
  from process start to the SSH server's greeting there.
- driver: the same guest built by the libvirt driver on this machine's libvirtd (define, seed, start, as the
  build workflow's tasks do) on the isolated bridge, timed from define to the greeting on the guest's address
  (the node holds the pool's gateway); then the guest agent's password reset, and a 16 MiB file written and read
  back through the agent (throughput).

Overhead = driver p50 - bare p50 (the issue's aim: within 5 s). Everything it makes is removed at the end; guest
traffic stays on the isolated bridge or QEMU's restricted user network.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from typing import NamedTuple

from cloudlet.config import Settings
from cloudlet.drivers.base import GuestNetwork, GuestSpec
from cloudlet.drivers.libvirt import host
from cloudlet.drivers.libvirt.guest import LibvirtDriver
from cloudlet.drivers.seed import build_seed_iso, seed_for
from cloudlet.images.debian import build_debian

BOOT_TIMEOUT = 600.0
ADDRESS = "198.51.100.77/24"  # on the isolated bridge's documentation range
GATEWAY = "198.51.100.1"


def greeting(address: str, port: int, deadline: float) -> bool:
    """Wait until an SSH server greets at address:port; False when the deadline passes first."""
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((address, port), timeout=2) as connection:
                if connection.recv(64).startswith(b"SSH-"):
                    return True
        except OSError:
            pass
        time.sleep(0.2)
    return False


def bare_boot(image: Path, work: Path) -> float:
    """Seconds from starting QEMU on an overlay of the image to its SSH greeting on a forwarded loopback port."""
    overlay, seed = work / f"bare-{uuid.uuid4().hex[:6]}.qcow2", work / "bare-seed.iso"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", str(image), "-F", "qcow2", str(overlay), "25G"],
                   check=True, timeout=60)
    spec = GuestSpec(name="bench-bare", image="debian-12", vcpus=1, memory_mib=1024, disk_gib=25,
                     hostname="bare.example.com", root_password="Bench-pass-2026", instance_id=uuid.uuid4().hex,
                     network=GuestNetwork(address="10.0.2.15/24", gateway="10.0.2.2"))
    build_seed_iso(seed_for(spec), seed)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    began = time.monotonic()
    qemu = subprocess.Popen(  # our fixed command line
        ["qemu-system-x86_64", "-machine", "pc,accel=tcg", "-m", "1024", "-smp", "1", "-nographic",
         "-serial", "null", "-monitor", "none",
         "-drive", f"file={overlay},if=virtio,format=qcow2", "-drive", f"file={seed},if=virtio,format=raw,readonly=on",
         "-netdev", f"user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:{port}-:22",
         "-device", f"virtio-net-pci,netdev=n0,mac={spec.mac_address}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        if not greeting("127.0.0.1", port, began + BOOT_TIMEOUT):
            raise RuntimeError("the bare guest's SSH server did not greet in time")
        return time.monotonic() - began
    finally:
        qemu.kill()
        qemu.wait(timeout=30)
        overlay.unlink(missing_ok=True)


FILE_BYTES = 16 * 1024 * 1024


class DriverRun(NamedTuple):
    """Seconds from define to SSH and to the agent's first answer, for a password reset, and file throughput
    through the agent (MiB/s)."""

    boot: float
    agent: float
    reset: float
    write: float
    read: float


def driver_boot(driver: LibvirtDriver, volume: str) -> DriverRun:
    """A guest through the libvirt driver: boot to SSH, the agent, a password reset, a 16 MiB file written and read
    back through the agent."""
    spec = GuestSpec(name=f"bench-deb-{uuid.uuid4().hex[:6]}", image=volume, vcpus=1, memory_mib=1024, disk_gib=25,
                     hostname="deb.example.com", root_password="Bench-pass-2026", instance_id=uuid.uuid4().hex,
                     network=GuestNetwork(address=ADDRESS, gateway=GATEWAY))
    try:
        began = time.monotonic()
        driver.define_guest(spec)
        driver.write_seed(spec)
        driver.start(spec.name)
        driver.ssh_banner(spec.name, ADDRESS.split("/")[0], BOOT_TIMEOUT)
        boot = time.monotonic() - began
        while not driver.agent_ping(spec.name):
            time.sleep(0.5)
        agent = time.monotonic() - began
        reset = time.monotonic()
        driver.set_password(spec.name, "root", "Another-pass-2026")
        reset_seconds = time.monotonic() - reset
        blob = os.urandom(FILE_BYTES)
        began = time.monotonic()
        driver.write_guest_file(spec.name, "/root/bench.bin", blob, 0o600)
        written = time.monotonic() - began
        began = time.monotonic()
        if driver.read_guest_file(spec.name, "/root/bench.bin", FILE_BYTES) != blob:
            raise RuntimeError("the file read back through the agent differs")
        read = time.monotonic() - began
        mib = FILE_BYTES / 2**20
        return DriverRun(boot, agent, reset_seconds, mib / written, mib / read)
    finally:
        driver.destroy_guest(spec.name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", type=Path, help="A built debian-12 qcow2 (default: build one now and time it).")
    parser.add_argument("--runs", type=int, default=1)
    args = parser.parse_args()
    settings = Settings()
    with tempfile.TemporaryDirectory(prefix="cloudlet-bench-", dir=settings.data_dir) as tmp:
        work = Path(tmp)
        image = args.image
        if image is None:
            began = time.monotonic()
            cache = settings.data_dir / "cache"
            built = build_debian("debian-12", settings.image_mirror, cache, work / "debian-12.qcow2")
            print(f"build: {time.monotonic() - began:.1f} s, {len(built.packages)} packages, "
                  f"{built.path.stat().st_size / 2**20:.0f} MiB qcow2")
            image = built.path
        driver = LibvirtDriver()
        driver.serve_gateways(frozenset({GATEWAY}))
        volume = f"bench-deb-{uuid.uuid4().hex[:6]}"
        driver.import_image(volume, image)
        bare: list[float] = []
        runs: list[DriverRun] = []
        try:
            for _ in range(args.runs):
                bare.append(bare_boot(image, work))
                runs.append(driver_boot(driver, volume))
        finally:
            driver.delete_image(volume)
        through, agent, reset = [r.boot for r in runs], [r.agent for r in runs], [r.reset for r in runs]
        print(f"boot to SSH, bare QEMU (TCG): p50 {statistics.median(bare):.1f} s  {[round(b, 1) for b in bare]}")
        print(f"boot to SSH, libvirt driver: p50 {statistics.median(through):.1f} s  {[round(b, 1) for b in through]}")
        print(f"overhead: {statistics.median(through) - statistics.median(bare):+.1f} s (aim: within 5 s)")
        print(f"guest agent answering: p50 {statistics.median(agent):.1f} s after define")
        print(f"password reset through the agent: p50 {statistics.median(reset) * 1000:.0f} ms")
        print(f"a 16 MiB file through the agent: write p50 {statistics.median(r.write for r in runs):.1f} MiB/s, "
              f"read p50 {statistics.median(r.read for r in runs):.1f} MiB/s")
        print(f"(bridge {host.NETWORK_NAME} holds {sorted(host.bridge_addresses())})")


if __name__ == "__main__":
    main()
