"""Build the "tiny" guest image offline, from Debian packages only.

The image is a real bootable disk: an MBR with SYSLINUX, one FAT partition holding the Debian cloud
kernel, an initramfs and syslinux.cfg. The initramfs is the whole userland (busybox-static plus the
few virtio modules it needs), so the guest boots to userspace in seconds even under TCG. Its first
act is to read the NoCloud seed (a "cidata" ISO) and apply hostname, root password, SSH keys and the
static address, then print one CLOUDLET_READY line on the serial console. Because it boots through a
bootloader in the disk, the domain XML is the same for it and for imported cloud images.
The root filesystem lives in memory: state written inside the guest does not survive a power cycle,
but the seed is applied again on every boot.
"""

from __future__ import annotations

import gzip
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import NamedTuple

KERNEL_METAPACKAGE = "linux-image-cloud-amd64"
BUSYBOX_PACKAGE = "busybox-static"
GUEST_MODULES = ("virtio_pci", "virtio_blk", "virtio_net", "virtio_balloon", "virtio_rng", "isofs", "button",
                 "evdev")
IMAGE_SIZE_MIB = 64
TOOL_TIMEOUT_SECONDS = 600  # each tool of an image build (dpkg-deb, cpio, mkfs, qemu-img) on a 64 MiB image
PARTITION_START_SECTOR = 2048
SYSLINUX_MBR = Path("/usr/lib/syslinux/mbr/mbr.bin")


class GuestParts(NamedTuple):
    """What a guest is made of, unpacked from the Debian packages."""

    kernel: Path
    kernel_release: str
    modules_dir: Path  # .../lib/modules/<release>
    busybox: Path


def run_tool(*command: str | Path, cwd: Path | None = None, timeout: float = TOOL_TIMEOUT_SECONDS) -> str:
    """Run one of the image tools (a fixed command line) under a deadline; its output. RuntimeError if it fails."""
    try:
        result = subprocess.run([str(part) for part in command], cwd=cwd, check=False,  # noqa: S603  # our fixed tools
                                capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as error:
        raise RuntimeError(f"{' '.join(map(str, command))} did not finish within {timeout:g} s") from error
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, command))} failed: {result.stderr.strip()[-2000:]}")
    return result.stdout


def kernel_package() -> str:
    """The versioned kernel package the cloud kernel metapackage points at on this mirror."""
    for line in run_tool("apt-cache", "depends", KERNEL_METAPACKAGE).splitlines():
        line = line.strip()
        if line.startswith("Depends:") and "linux-image-" in line:
            return line.split(":", 1)[1].strip()
    raise RuntimeError(f"apt-cache does not know {KERNEL_METAPACKAGE}; is the Debian mirror configured?")


def fetch_parts(cache_dir: Path) -> GuestParts:
    """Download (once) and unpack the kernel and busybox packages into cache_dir."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    debs = cache_dir / "debs"
    debs.mkdir(exist_ok=True)
    unpacked = cache_dir / "root"
    kernels = sorted((unpacked / "boot").glob("vmlinuz-*")) if unpacked.exists() else []
    busybox = unpacked / "bin" / "busybox"
    if not kernels or not busybox.exists():
        wanted = [kernel_package(), BUSYBOX_PACKAGE]
        missing = [name for name in wanted if not list(debs.glob(f"{name}_*.deb"))]
        if missing:
            os.chmod(debs, 0o777)  # apt drops to the _apt user to download  # noqa: S103
            run_tool("apt-get", "download", "-q", *missing, cwd=debs)
        for name in wanted:
            run_tool("dpkg-deb", "-x", next(debs.glob(f"{name}_*.deb")), unpacked)
        kernels = sorted((unpacked / "boot").glob("vmlinuz-*"))
    kernel = kernels[-1]
    release = kernel.name.removeprefix("vmlinuz-")
    return GuestParts(kernel, release, unpacked / "lib" / "modules" / release, busybox)


def module_load_order(modules_dir: Path, wanted: tuple[str, ...]) -> list[str]:
    """Relative paths of the wanted modules and their dependencies, dependencies first.

    Read from each module's own .modinfo "depends=" entry, because the unpacked package has no
    modules.dep (depmod runs in the package's postinst) and the host may have no depmod.
    """
    by_name = {path.name.removesuffix(".ko").replace("-", "_"): path for path in modules_dir.rglob("*.ko")}
    order: list[str] = []

    def visit(name: str) -> None:
        path = by_name[name]
        relative = str(path.relative_to(modules_dir))
        if relative in order:
            return
        found = re.search(rb"\0depends=([^\0]*)\0", path.read_bytes())
        for dep in (found.group(1).decode().split(",") if found else []):
            if dep:
                visit(dep.replace("-", "_"))
        order.append(relative)

    for name in wanted:
        if name in by_name:  # built into this kernel when absent
            visit(name)
    return order


INITTAB = """\
::sysinit:/etc/rc.boot
ttyS0::respawn:/sbin/getty -L 115200 ttyS0 vt100
::ctrlaltdel:/sbin/reboot
::shutdown:/etc/rc.shutdown
"""

RC_SHUTDOWN = """\
#!/bin/sh
echo "cloudlet: shutting down"
umount -a -r 2>/dev/null
"""

POWER_BUTTON = """\
#!/bin/sh
# busybox acpid runs this on the ACPI power button: the hypervisor's "shutdown" and "reboot"
poweroff
"""

# Applied on every boot from the seed; the parser reads the subset of YAML that drivers/seed.py writes
# (single-quoted scalars, block lists) plus cloud-init's `chpasswd: list:` form.
RC_BOOT = r"""#!/bin/sh
export PATH=/sbin:/bin:/usr/sbin:/usr/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mkdir -p /dev/pts /run /tmp /mnt/seed /root/.ssh /var/log
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /run
for m in $(cat /etc/modules.order); do insmod "/lib/modules/$m" 2>/dev/null; done
ip link set lo up

unquote() { sed -e "s/^[[:space:]]*//; s/[[:space:]]*$//" -e "s/^'\(.*\)'$/\1/; s/^\"\(.*\)\"$/\1/" -e "s/''/'/g"; }
top() { sed -n "s/^$1:[[:space:]]*//p" "$2" | head -n 1 | unquote; }

seed=""
tries=0
while [ -z "$seed" ] && [ $tries -lt 100 ]; do
  for dev in /dev/vd[b-z] /dev/sr[0-9] /dev/sd[a-z] /dev/vda; do
    [ -b "$dev" ] || continue
    if mount -t iso9660 -o ro "$dev" /mnt/seed 2>/dev/null; then
      [ -f /mnt/seed/meta-data ] && { seed=$dev; break; }
      umount /mnt/seed
    fi
  done
  [ -n "$seed" ] || { tries=$((tries + 1)); sleep 0.1; }
done
if [ -z "$seed" ]; then
  echo "CLOUDLET_NO_SEED no cidata device found"
  exit 0
fi
M=/mnt/seed/meta-data
U=/mnt/seed/user-data
N=/mnt/seed/network-config
iid=$(top instance-id $M)
host=$(top local-hostname $M)
uhost=$(top hostname $U)
[ -n "$uhost" ] && host=$uhost
[ -n "$host" ] && { hostname "$host"; echo "$host" > /etc/hostname; }

pw=$(awk '
  /^[^ #-]/ { inpw = ($0 ~ /^chpasswd:/); root = 0; inlist = 0 }
  inpw && /^  list:/ { inlist = 1; next }
  inpw && inlist && /root:/ { sub(/^[ -]*root:/, ""); print; exit }
  inpw && /name:[[:space:]]*'"'"'?root'"'"'?[[:space:]]*$/ { root = 1; next }
  inpw && root && /password:/ { sub(/^[^:]*password:[[:space:]]*/, ""); print; exit }
' $U | unquote)
pwset=unset
if [ -n "$pw" ]; then
  hash=$(printf '%s\n' "$pw" | mkpasswd -m sha512 -P 0) && [ -n "$hash" ] \
    && printf 'root:%s:19000:0:99999:7:::\n' "$hash" > /etc/shadow && pwset=set
fi

awk '
  /^[^ #-]/ { inkeys = ($0 ~ /^ssh_authorized_keys:/); next }
  inkeys && /^[[:space:]]*- / { sub(/^[[:space:]]*- /, ""); print }
' $U | unquote > /root/.ssh/authorized_keys
chmod 700 /root/.ssh
chmod 600 /root/.ssh/authorized_keys
keys=$(grep -c . /root/.ssh/authorized_keys)

addr=""
if [ -f "$N" ]; then
  mac=$(awk '/macaddress:/ { sub(/^[^:]*macaddress:[[:space:]]*/, ""); print; exit }' $N | unquote)
  ifc=eth0
  for path in /sys/class/net/*; do
    [ "$(cat $path/address 2>/dev/null)" = "$mac" ] && ifc=${path##*/}
  done
  ip link set "$ifc" up
  awk '
    /^    addresses:/ {
      inaddr = 1
      if ($0 ~ /\[/) { sub(/.*\[/, ""); sub(/\].*/, ""); gsub(/,/, "\n"); print; inaddr = 0 }
      next
    }
    inaddr && /^    - / { sub(/^    - /, ""); print; next }
    { inaddr = 0 }
  ' $N | unquote > /run/addresses
  while read -r a; do
    [ -n "$a" ] || continue
    ip addr add "$a" dev "$ifc" && { [ -n "$addr" ] || addr=$a; }
  done < /run/addresses
  gateways=$(awk '/via:|gateway4:|gateway6:/ { sub(/^[^:]*(via|gateway4|gateway6):[[:space:]]*/, ""); print }' $N)
  for gw in $(echo "$gateways" | unquote); do
    ip route add default via "$gw" 2>/dev/null
  done
  awk '/^      addresses:/ { ns = 1; next } ns && /^      - / { sub(/^      - /, ""); print; next } { ns = 0 }' $N \
    | unquote | sed 's/^/nameserver /' > /etc/resolv.conf
fi
umount /mnt/seed
# acpid needs the power button's input device (there once button/evdev have probed), and must run
# before READY: a shutdown asked for right after READY would otherwise go unheard
for i in 1 2 3 4 5 6 7 8 9 10; do ls /dev/input/event* >/dev/null 2>&1 && break; sleep 0.1; done
acpid -l /dev/null
# two small TCP services (what firewall tests knock on): each connection gets one line
nc -ll -p 8080 -e echo hi8080 >/dev/null 2>&1 &
nc -ll -p 9090 -e echo hi9090 >/dev/null 2>&1 &
# a sink and a source (what bandwidth tests time): 7070 reads a connection to its end, then answers how many
# bytes came; 7071 sends 46 x 64 KiB of zeros and closes
nc -ll -p 7070 -e wc -c >/dev/null 2>&1 &
nc -ll -p 7071 -e sh -c 'dd if=/dev/zero bs=65536 count=46 2>/dev/null' >/dev/null 2>&1 &
# a web server (what the WAF's edge fronts in tests): a page, and a CGI that says what the proxy told it
mkdir -p /www/cgi-bin
echo "hello from $(hostname)" > /www/index.html
cat > /www/cgi-bin/echo <<'CGI'
#!/bin/sh
printf 'Content-Type: text/plain\r\n\r\nhost=%s xff=%s real=%s\n' "$HTTP_HOST" "$HTTP_X_FORWARDED_FOR" "$HTTP_X_REAL_IP"
CGI
chmod +x /www/cgi-bin/echo
httpd -p 80 -h /www
echo "CLOUDLET_READY instance-id=$iid hostname=$(hostname) address=${addr%%/*} keys=$keys password=$pwset"
"""

PROBE_INIT = """#!/bin/sh
echo CLOUDLET_PROBE_OK
/bin/busybox poweroff -f
"""


def _stage_userland(parts: GuestParts, root: Path, init: str | None) -> None:
    for directory in ("bin", "sbin", "usr/bin", "usr/sbin", "etc/acpi/PWRF", "proc", "sys", "dev", "run", "tmp",
                      "root", "mnt", "lib/modules"):
        (root / directory).mkdir(parents=True, exist_ok=True)
    shutil.copy2(parts.busybox, root / "bin" / "busybox")
    for applet in run_tool(parts.busybox, "--list-full").split():
        link = root / applet
        if not link.exists():
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(os.path.relpath(root / "bin" / "busybox", link.parent))
    os.mknod(root / "dev" / "console", 0o600 | 0o020000, os.makedev(5, 1))
    if init is not None:
        (root / "init").write_text(init)
        (root / "init").chmod(0o755)
        return
    (root / "init").symlink_to("bin/busybox")
    order = module_load_order(parts.modules_dir, GUEST_MODULES)
    for relative in order:
        target = root / "lib" / "modules" / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(parts.modules_dir / relative, target)
    etc = root / "etc"
    (etc / "modules.order").write_text("\n".join(order) + "\n")
    (etc / "inittab").write_text(INITTAB)
    for name, text in (("rc.boot", RC_BOOT), ("rc.shutdown", RC_SHUTDOWN), ("acpi/PWRF/00000080", POWER_BUTTON)):
        (etc / name).write_text(text)
        (etc / name).chmod(0o755)
    (etc / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    (etc / "shadow").write_text("root:*:19000:0:99999:7:::\n")
    (etc / "shadow").chmod(0o600)
    (etc / "group").write_text("root:x:0:\n")
    (etc / "hostname").write_text("tiny\n")
    (etc / "issue").write_text("Cloudlet tiny guest \\n (\\l)\n\n")
    (root / "root").chmod(0o700)


def build_initramfs(parts: GuestParts, target: Path, init: str | None = None) -> Path:
    """A gzip'd newc cpio holding the busybox userland (or just `init` for a probe boot)."""
    with tempfile.TemporaryDirectory(prefix="cloudlet-initramfs-") as tmp:
        root = Path(tmp)
        _stage_userland(parts, root, init)
        names = run_tool("find", ".", cwd=root)
        archive = subprocess.run(["cpio", "-o", "-H", "newc", "--quiet"], cwd=root, input=names.encode(),  # noqa: S607
                                 capture_output=True, check=True, timeout=TOOL_TIMEOUT_SECONDS).stdout
    target.write_bytes(gzip.compress(archive, compresslevel=6))
    return target


SYSLINUX_CFG = """\
DEFAULT cloudlet
PROMPT 0
TIMEOUT 0
LABEL cloudlet
  LINUX /vmlinuz
  INITRD /initrd.img
  APPEND console=tty0 console=ttyS0,115200n8 panic=-1 quiet
"""


def write_boot_disk(raw: Path, *, kernel: Path, initrd: Path, syslinux_cfg: str, boot_mib: int,
                    disk_mib: int, more_partitions: str = "") -> int:
    """A raw MBR disk of disk_mib at raw: SYSLINUX's boot code, and a bootable FAT partition of boot_mib (label
    CLOUDLET) holding syslinux.cfg, the kernel and the initramfs; more_partitions (sfdisk lines) follow it.
    Returns the sector where the space after the boot partition begins."""
    for tool in ("syslinux", "mkfs.fat", "mcopy", "sfdisk"):
        if shutil.which(tool) is None:
            raise RuntimeError(f"building an image needs {tool}; run `cloudlet node prepare`")
    boot_sectors = boot_mib * 2048 - (PARTITION_START_SECTOR if not more_partitions else 0)
    with raw.open("wb") as handle:
        handle.truncate(disk_mib * 1024 * 1024)
    table = f"start={PARTITION_START_SECTOR}, size={boot_sectors}, type=c, bootable\n{more_partitions}"
    subprocess.run(["sfdisk", "--quiet", str(raw)], input=table, text=True, check=True,  # noqa: S603, S607
                   capture_output=True, timeout=TOOL_TIMEOUT_SECONDS)
    with tempfile.TemporaryDirectory(prefix="cloudlet-boot-", dir=raw.parent) as tmp:
        work = Path(tmp)
        fat = work / "boot.fat"
        with fat.open("wb") as handle:
            handle.truncate(boot_sectors * 512)
        run_tool("mkfs.fat", "-n", "CLOUDLET", "-h", str(PARTITION_START_SECTOR), fat)
        (work / "syslinux.cfg").write_text(syslinux_cfg)
        shutil.copyfile(kernel, work / "vmlinuz")
        shutil.copyfile(initrd, work / "initrd.img")
        run_tool("mcopy", "-i", fat, work / "syslinux.cfg", work / "vmlinuz", work / "initrd.img", "::/")
        run_tool("syslinux", "--install", fat)
        with raw.open("r+b") as disk:
            disk.write(SYSLINUX_MBR.read_bytes()[:440])  # boot code only; the partition table stays
            disk.seek(PARTITION_START_SECTOR * 512)
            with fat.open("rb") as part:
                shutil.copyfileobj(part, disk, 1024 * 1024)
    return PARTITION_START_SECTOR + boot_sectors


def build_disk(parts: GuestParts, initramfs: Path, target: Path) -> Path:
    """An MBR disk with SYSLINUX on one bootable FAT partition, converted to qcow2 at target."""
    if shutil.which("qemu-img") is None:
        raise RuntimeError("building an image needs qemu-img; run `cloudlet node prepare`")
    with tempfile.TemporaryDirectory(prefix="cloudlet-disk-") as tmp:
        raw = Path(tmp) / "disk.raw"
        write_boot_disk(raw, kernel=parts.kernel, initrd=initramfs, syslinux_cfg=SYSLINUX_CFG,
                        boot_mib=IMAGE_SIZE_MIB, disk_mib=IMAGE_SIZE_MIB)
        run_tool("qemu-img", "convert", "-f", "raw", "-O", "qcow2", raw, target)
    return target


def build_tiny(cache_dir: Path, target: Path) -> Path:
    """Build the tiny image into target (a qcow2 file) from Debian packages cached in cache_dir."""
    parts = fetch_parts(cache_dir)
    with tempfile.TemporaryDirectory(prefix="cloudlet-tiny-") as tmp:
        initramfs = build_initramfs(parts, Path(tmp) / "initrd.img")
        target.parent.mkdir(parents=True, exist_ok=True)
        return build_disk(parts, initramfs, target)
