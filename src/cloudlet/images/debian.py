"""Build a Debian cloud image offline from Debian's package archive, with mmdebstrap.

The image is what an official Debian "genericcloud" image is, made from packages alone: systemd,
openssh-server, cloud-init reading the NoCloud seed, the QEMU guest agent and the cloud kernel. It boots
from its own disk: an MBR with SYSLINUX, a small FAT partition holding the kernel and initramfs
(mounted at /boot/cloudlet, where a kernel hook copies every new kernel), and the ext4 root filesystem
last on the disk, where cloud-init's growpart and resize_rootfs grow it to the server's disk on first
boot. Nothing is mounted on the build machine: mke2fs writes the root filesystem from a directory.

Every boot ends with one CLOUDLET_READY line on the serial console, the same readiness announcement
the tiny image makes, so an image with or without the guest agent is watched the same way.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cloudlet.images.build import run_tool, write_boot_disk
from cloudlet.images.models import ImageCapability

DEBIAN_RELEASES = {"debian-12": "bookworm"}
PACKAGES = ("systemd-sysv", "udev", "dbus", "openssh-server", "openssh-sftp-server", "cloud-init",
            "cloud-guest-utils", "qemu-guest-agent", "linux-image-cloud-amd64", "ifupdown", "iproute2",
            "e2fsprogs", "netbase", "ca-certificates", "less")
CAPABILITIES = frozenset({ImageCapability.CLOUD_INIT, ImageCapability.GUEST_AGENT, ImageCapability.SSH})
OS_FAMILY = "debian"
BOOT_MIB = 128
DISK_MIB = 2048  # grown to the server's disk on its first boot
BOOT_LABEL = "CLOUDLET"  # what images.build's boot partition is called
ROOT_LABEL = "cloudlet-root"
BUILD_TIMEOUT_SECONDS = 1800  # mmdebstrap downloads about 150 MB and installs them

SYSLINUX_CFG = f"""\
DEFAULT debian
PROMPT 0
TIMEOUT 0
LABEL debian
  LINUX /vmlinuz
  INITRD /initrd.img
  APPEND root=LABEL={ROOT_LABEL} ro console=tty0 console=ttyS0,115200n8 net.ifnames=0
"""

FSTAB = f"""\
LABEL={ROOT_LABEL} / ext4 errors=remount-ro 0 1
LABEL={BOOT_LABEL} /boot/cloudlet vfat defaults,nofail 0 2
"""

CLOUD_CFG = """\
# Cloudlet: the seed is a NoCloud "cidata" disk; nothing is looked for on the network
datasource_list: [ NoCloud, None ]
# root is the account a Cloudlet server is reached with (as on Hetzner): no default user
users: []
disable_root: false
# the host keys made at first boot stay when a reinstall or password reset gives the seed a new instance-id
ssh_deletekeys: false
# the server's own name resolves (hostname -f), as on the big clouds' images
manage_etc_hosts: true
# a locale every glibc has built in (Debian's default, en_US.UTF-8, is not generated in this image)
locale: C.UTF-8
"""

# A kernel installed later (apt upgrade) is copied where SYSLINUX finds it, as the image's own one was.
BOOT_HOOK = """\
#!/bin/sh
# Cloudlet: SYSLINUX boots /vmlinuz and /initrd.img of the FAT partition mounted at /boot/cloudlet
set -e
mountpoint -q /boot/cloudlet || exit 0
kernel=$(ls -1v /boot/vmlinuz-* 2>/dev/null | tail -n 1)
[ -n "$kernel" ] || exit 0
release=${kernel#/boot/vmlinuz-}
[ -f "/boot/initrd.img-$release" ] || exit 0
cp "$kernel" /boot/cloudlet/vmlinuz.new && mv /boot/cloudlet/vmlinuz.new /boot/cloudlet/vmlinuz
cp "/boot/initrd.img-$release" /boot/cloudlet/initrd.new && mv /boot/cloudlet/initrd.new /boot/cloudlet/initrd.img
"""

# root is the account a Cloudlet server is reached with, by key or by the password given at order time (as on
# Hetzner); Debian's default would refuse root's password over SSH
SSHD_CONFIG = """\
PermitRootLogin yes
"""

READY_SCRIPT = r"""#!/bin/sh
# Cloudlet: announce on the serial console that the seed is applied (drivers/seed.py reads this line)
iid=$(cat /var/lib/cloud/data/instance-id 2>/dev/null)
addr=$(ip -4 -o addr show dev eth0 2>/dev/null | awk '{ split($4, a, "/"); print a[1]; exit }')
keys=$(grep -c '^ssh-\|^ecdsa-\|^sk-' /root/.ssh/authorized_keys 2>/dev/null || true)
case "$(getent shadow root | cut -d: -f2)" in '$'*) pw=set ;; *) pw=unset ;; esac
echo "CLOUDLET_READY instance-id=$iid hostname=$(hostname) address=$addr keys=${keys:-0} password=$pw" > /dev/ttyS0
"""

READY_UNIT = """\
[Unit]
Description=Cloudlet: announce readiness on the serial console
After=cloud-final.service ssh.service qemu-guest-agent.service
Wants=cloud-final.service

[Service]
Type=oneshot
ExecStart=/usr/local/sbin/cloudlet-ready

[Install]
WantedBy=cloud-init.target
"""


@dataclass(frozen=True)
class BuiltImage:
    """A Debian image file and what it was made of."""

    path: Path
    packages: list[str]  # "name version" of every installed package, sorted
    os_family: str = OS_FAMILY
    capabilities: frozenset[ImageCapability] = CAPABILITIES


def _needs(*tools: str) -> None:
    for tool in tools:
        if shutil.which(tool) is None:
            raise RuntimeError(f"building a Debian image needs {tool}; run `cloudlet node prepare`")


def bootstrap(release: str, mirror: str, root: Path, debs: Path) -> None:
    """Install the packages into the directory root with mmdebstrap; downloaded packages are kept in debs."""
    debs.mkdir(parents=True, exist_ok=True)
    run_tool("mmdebstrap", "--mode=root", "--format=directory", "--variant=apt", "--include=" + ",".join(PACKAGES),
         "--aptopt=Acquire::Retries 3",
         # the packages downloaded by an earlier build are used again, and this build's kept for the next
         "--setup-hook=mkdir -p \"$1\"/var/cache/apt/archives/",
         f"--setup-hook=sync-in {debs} /var/cache/apt/archives/",
         f"--customize-hook=sync-out /var/cache/apt/archives {debs}",
         release, root, mirror, timeout=BUILD_TIMEOUT_SECONDS)


def _write(path: Path, text: str, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)


def configure(root: Path) -> list[str]:
    """Make the installed tree a cloud image; the list of its packages ("name version")."""
    _write(root / "etc/fstab", FSTAB)
    (root / "boot/cloudlet").mkdir(parents=True, exist_ok=True)
    _write(root / "etc/cloud/cloud.cfg.d/90_cloudlet.cfg", CLOUD_CFG)
    for hook in ("etc/kernel/postinst.d/zz-cloudlet-boot", "etc/initramfs/post-update.d/zz-cloudlet-boot"):
        _write(root / hook, BOOT_HOOK, 0o755)
    _write(root / "etc/ssh/sshd_config.d/60-cloudlet.conf", SSHD_CONFIG)
    _write(root / "usr/local/sbin/cloudlet-ready", READY_SCRIPT, 0o755)
    _write(root / "etc/systemd/system/cloudlet-ready.service", READY_UNIT)
    # cloud-final is ordered after multi-user.target, so the announcement hangs on cloud-init's own target
    wants = root / "etc/systemd/system/cloud-init.target.wants"
    wants.mkdir(parents=True, exist_ok=True)
    link = wants / "cloudlet-ready.service"
    if not link.is_symlink():
        link.symlink_to("/etc/systemd/system/cloudlet-ready.service")
    _write(root / "etc/hostname", "debian\n")
    _write(root / "etc/hosts", "127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n")
    # what must differ between servers is made on each one's first boot: host keys (cloud-init), machine id
    for key in (root / "etc/ssh").glob("ssh_host_*"):
        key.unlink()
    _write(root / "etc/machine-id", "")
    (root / "var/lib/dbus/machine-id").unlink(missing_ok=True)
    shutil.rmtree(root / "var/cache/apt/archives", ignore_errors=True)
    (root / "var/cache/apt/archives/partial").mkdir(parents=True)
    for lists in (root / "var/lib/apt/lists").glob("*_*"):
        lists.unlink()
    listed = run_tool("chroot", root, "dpkg-query", "-W", "-f=${Package} ${Version}\n")
    return sorted(line for line in listed.splitlines() if line)


def _boot_files(root: Path) -> tuple[Path, Path]:
    kernels = sorted((root / "boot").glob("vmlinuz-*"))
    if not kernels:
        raise RuntimeError("the bootstrapped tree has no kernel in /boot")
    release = kernels[-1].name.removeprefix("vmlinuz-")
    initrd = root / "boot" / f"initrd.img-{release}"
    if not initrd.exists():
        raise RuntimeError(f"the bootstrapped tree has no initramfs for kernel {release}")
    return kernels[-1], initrd


def make_disk(root: Path, target: Path) -> Path:
    """The bootable disk of the tree at root, as a qcow2 file at target."""
    _needs("mke2fs", "qemu-img")
    kernel, initrd = _boot_files(root)
    with tempfile.TemporaryDirectory(prefix="cloudlet-disk-", dir=target.parent) as tmp:
        raw = Path(tmp) / "disk.raw"
        root_start = write_boot_disk(raw, kernel=kernel, initrd=initrd, syslinux_cfg=SYSLINUX_CFG, boot_mib=BOOT_MIB,
                                     disk_mib=DISK_MIB, more_partitions="type=83\n")
        # the root filesystem written straight into its partition, from the tree (owners and modes kept)
        root_kib = (DISK_MIB * 2048 - root_start) // 2
        run_tool("mke2fs", "-q", "-F", "-t", "ext4", "-L", ROOT_LABEL, "-d", root, "-E", f"offset={root_start * 512}",
             raw, f"{root_kib}k")
        partial = target.with_name(f".{target.name}.partial")
        run_tool("qemu-img", "convert", "-f", "raw", "-O", "qcow2", raw, partial)
        os.replace(partial, target)
    return target


def build_debian(name: str, mirror: str, cache_dir: Path, target: Path) -> BuiltImage:
    """Build the Debian image `name` (e.g. debian-12) from mirror into target; nothing is left at target
    when the build fails."""
    release = DEBIAN_RELEASES.get(name)
    if release is None:
        raise ValueError(f"unknown Debian image {name!r}; known: {', '.join(sorted(DEBIAN_RELEASES))}")
    _needs("mmdebstrap")
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="cloudlet-debian-", dir=target.parent) as tmp:
        root = Path(tmp) / "root"
        bootstrap(release, mirror, root, cache_dir / f"debs-{release}")
        packages = configure(root)
        make_disk(root, target)
    return BuiltImage(target, packages)
