"""Debian 12 servers, ordered like a customer orders them on two surfaces, are reached over SSH as on any real
cloud: with the customer's key, the root password, and certificates of Cloudlet's SSH CA (and refused with one
that names another login, belongs to another customer, has expired, or was revoked while the server ran); a
password reset (through the guest agent), files through the agent, the kernel hook, an upgrade and a reinstall
are checked from inside over SSH.

The image is built from Debian's archive by `cloudlet images build debian-12`'s own code once per machine and
recipe (cached by the digest of its recipe and mirror, with the package list it got; a second build must get
the same), imported into this machine's libvirt pool, and registered with what it can do. The guest boots
under TCG from its own disk (about a minute and a half on two cores) and is reached over the node's bridge,
which holds the gateway of the region's pool: the test logs in from the node to the guest's own address.
"""

from __future__ import annotations

import fcntl
import hashlib
import io
import json
import os
import uuid
import zipfile
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import httpx
import paramiko
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cloudlet.auth.models import User
from cloudlet.catalog import service as catalog
from cloudlet.catalog.defaults import IMAGE_TEMPLATES
from cloudlet.config import Settings
from cloudlet.drivers.libvirt.guest import LibvirtDriver
from cloudlet.images import debian
from cloudlet.images import service as images
from cloudlet.images.models import ImageSource
from cloudlet.kit import clock
from cloudlet.networking import service as networking
from cloudlet.networking.schemas import IpPoolUpdate
from cloudlet.projects.schemas import Actor
from cloudlet.sshca import service as sshca
from cloudlet.sshca.schemas import CertificateCreate
from cloudlet.surfaces.deps import Runtime
from tests.cloud import REGION
from tests.e2e.test_instances_libvirt import (
    DELETION_SECONDS,
    PASSWORD,
    GuestCluster,
    client,
    cluster,
    customer,
    idle,
    node,
    order,
    status_of,
    tiny_image,
)
from tests.helpers import Person
from tests.integration.test_worker import wait_for

pytestmark = [pytest.mark.long(seconds=360), pytest.mark.engines("sqlite")]

__all__ = ["cluster", "node", "tiny_image"]

SSH_SECONDS = 30.0
OTHER_TESTS_ADDRESSES = "203.0.113.0/25"
DEBIAN_BOOT_SECONDS = 420  # about 70 s alone under TCG; much longer beside the rest of the suite on two cores


@pytest.fixture(scope="session")
def debian_image() -> Path:
    """The Debian 12 image, built once per recipe and mirror on this machine (about a minute, a few hundred MB
    from the mirror the first time), whichever test process asks first."""
    settings = Settings()
    recipe = hashlib.sha256(Path(debian.__file__).read_bytes() + settings.image_mirror.encode()).hexdigest()[:16]
    cache = settings.data_dir / "cache"
    images_dir = cache / "images"
    images_dir.mkdir(parents=True, exist_ok=True)
    path = images_dir / f"debian-12-{recipe}.qcow2"
    with (images_dir / "debian-12.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not path.exists() or not packages_of(path).exists():
            for old in images_dir.glob("debian-12-*"):
                old.unlink()
            built = debian.build_debian("debian-12", settings.image_mirror, cache, path)
            packages_of(path).write_text(json.dumps(built.packages))
    return path


def packages_of(image: Path) -> Path:
    """Where the packages a cached image was built with are kept."""
    return image.with_suffix(".packages.json")


def test_a_second_build_installs_the_same_packages(debian_image: Path, tmp_path: Path) -> None:
    """Building twice from one mirror gives the same package set, package for package and version for version
    (the second build stops short of the disk, which holds nothing more)."""
    settings = Settings()
    release = debian.DEBIAN_RELEASES["debian-12"]
    root = tmp_path / "root"
    debian.bootstrap(release, settings.image_mirror, root, settings.data_dir / "cache" / f"debs-{release}")
    again = debian.configure(root)
    first = json.loads(packages_of(debian_image).read_text())
    assert {"openssh-server", "cloud-init", "qemu-guest-agent", "systemd-sysv"} <= {p.split()[0] for p in again}
    assert again == first


@pytest.fixture
def reserved_addresses() -> list[str]:
    """The pool's addresses this module's guests leave to the other e2e tests (a module that shares this one's
    fixtures while it runs names another slice)."""
    return [OTHER_TESTS_ADDRESSES]


@pytest.fixture
def debian_template(runtime: Runtime, node: LibvirtDriver, debian_image: Path,
                    reserved_addresses: list[str]) -> Iterator[int]:
    """The debian-12 OS template, booting the Debian image imported into the node's pool under a name of its own."""
    name = f"e2e-deb-{uuid.uuid4().hex[:8]}"
    info = node.import_image(name, debian_image)
    try:
        with runtime.db.session() as session:
            # The other e2e tests, each with a database of its own, hand out the pool's first addresses to guests
            # on the same bridge at the same time; this test talks to its guests by address, so it takes its own.
            for pool in networking.list_pools(session, REGION):
                networking.update_pool(session, pool.id, IpPoolUpdate(reserved=reserved_addresses))
            image = images.register_from_driver(session, info, ImageSource.BUILT, debian_image,
                                                os_family=debian.OS_FAMILY, capabilities=debian.CAPABILITIES)
            wanted = IMAGE_TEMPLATES["debian-12"].model_copy(update={"image_id": image.id})
            template = catalog.create_template(session, wanted)
        yield template.id
    finally:
        node.delete_image(name)


def new_key() -> tuple[paramiko.Ed25519Key, str]:
    """A fresh Ed25519 key pair: the private key for paramiko, the public key line for the order."""
    private = Ed25519PrivateKey.generate()
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                serialization.NoEncryption()).decode()
    public = private.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return paramiko.Ed25519Key.from_private_key(io.StringIO(pem)), public.decode() + " customer@laptop"


def certified(http: httpx.Client, **body: Any) -> tuple[paramiko.Ed25519Key, str]:
    """A fresh key, not in any authorized_keys, with a certificate the CA signed for it as the body asks; and the
    certificate's id."""
    key, public = new_key()
    signed = http.post("/v1/ssh/certificate", json={"public_key": public} | body)
    assert signed.status_code == 200, signed.text
    key.load_certificate(signed.json()["certificate"])
    return key, signed.json()["id"]


def ssh(address: str, command: str, **credentials: object) -> str:
    """Run command as root on the guest over SSH; its output (the command must succeed)."""
    with paramiko.SSHClient() as connection:
        connection.set_missing_host_key_policy(paramiko.AutoAddPolicy())  # a guest built for this test
        connection.connect(address, username="root", timeout=SSH_SECONDS, banner_timeout=SSH_SECONDS,
                           auth_timeout=SSH_SECONDS, allow_agent=False, look_for_keys=False, **credentials)
        _stdin, stdout, stderr = connection.exec_command(command, timeout=SSH_SECONDS)
        output = stdout.read().decode()
        assert stdout.channel.recv_exit_status() == 0, stderr.read().decode()
        return output


def expired_certificate(runtime: Runtime, person: Person) -> paramiko.Ed25519Key:
    """A fresh key with a certificate for root that the CA signed (in this process, on the cluster's database and
    secret) three hours ago, valid for one."""
    key, public = new_key()
    with clock.travel(timedelta(hours=-3)), runtime.db.session() as session:
        user = session.get(User, person.user.id)
        assert user is not None
        signer = SimpleNamespace(user=user, user_id=user.id, project_scope=None)
        signed = sshca.sign_certificate(session, runtime.settings, cast(Actor, signer), person.project_id,
                                        CertificateCreate(public_key=public, principals=["root"], validity_hours=1))
    key.load_certificate(signed.certificate)
    return key


def check_certificates(runtime: Runtime, person: Person, http: httpx.Client, url: str, address: str,
                       certificate: tuple[paramiko.Ed25519Key, str]) -> None:
    """A certificate of the CA logs in as a login it names; one that does not name it, one of another customer,
    an expired one and (within a minute, through the guest agent) a revoked one are refused."""
    key, certificate_id = certificate
    assert ssh(address, "whoami", pkey=key).strip() == "root"
    with pytest.raises(paramiko.AuthenticationException):
        ssh(address, "whoami", pkey=certified(http, principals=["deploy"])[0])  # root is not among its principals
    with client(url, customer(runtime)) as stranger, pytest.raises(paramiko.AuthenticationException):
        ssh(address, "whoami", pkey=certified(stranger, principals=["root"])[0])  # another customer's
    with pytest.raises(paramiko.AuthenticationException):
        ssh(address, "whoami", pkey=expired_certificate(runtime, person))
    revoked = http.post(f"/v1/ssh/certificates/{certificate_id}/revoke")
    assert revoked.status_code == 200, revoked.text

    def refused() -> bool:
        try:
            ssh(address, "whoami", pkey=key)
        except paramiko.AuthenticationException:
            return True
        return False

    wait_for(refused, "the revocation to reach the running guest", seconds=60)


def check_files(http: httpx.Client, instance_id: str, address: str, key: paramiko.Ed25519Key) -> None:
    """Files through the guest agent: an upload read back over SSH and through the API, a move, a zip, a symbolic
    link that leaves the root refused, a recursive delete."""
    files = f"/v1/instances/{instance_id}/files"
    blob = os.urandom(1024 * 1024)
    uploaded = http.post(f"{files}/upload", data={"path": "/srv/app"}, timeout=120,
                         files=[("files", ("blob.bin", blob, "application/octet-stream")),
                                ("files", ("hello.txt", b"hello from cloudlet\n", "text/plain"))])
    assert uploaded.status_code == 201, uploaded.text
    assert ssh(address, "sha256sum /srv/app/blob.bin | cut -d' ' -f1; stat -c %a /srv/app/hello.txt",
               pkey=key).split() == [hashlib.sha256(blob).hexdigest(), "644"]
    assert http.get(f"{files}/download", params={"path": "/srv/app/blob.bin"}, timeout=120).content == blob
    assert http.get(f"{files}/content", params={"path": "/etc/hostname"}).json()["content"] == "deb-2\n"
    assert http.post(f"{files}/mkdir", json={"path": "/srv/app/sub"}).status_code == 201
    moved = http.post(f"{files}/move", json={"from": "hello.txt", "to": "sub/hello.txt", "root": "/srv/app"})
    assert moved.status_code == 200, moved.text
    ssh(address, "ln -s /etc /srv/app/etc-link", pkey=key)
    listing = {e["name"]: e["type"] for e in http.get(files, params={"path": "/srv/app"}).json()["entries"]}
    assert listing == {"blob.bin": "file", "etc-link": "symlink", "sub": "directory"}
    escaped = http.get(f"{files}/content", params={"root": "/srv/app", "path": "etc-link/hostname"})
    assert escaped.status_code == 400 and "symbolic link" in escaped.json()["error"], escaped.text
    archive = http.get(f"{files}/download-zip", params={"path": "/srv/app"}, timeout=120)
    assert archive.status_code == 200, archive.text
    with zipfile.ZipFile(io.BytesIO(archive.content)) as opened:
        assert sorted(opened.namelist()) == ["blob.bin", "sub/", "sub/hello.txt"]  # the link is left out
        assert opened.read("sub/hello.txt") == b"hello from cloudlet\n" and opened.read("blob.bin") == blob
    assert http.delete(files, params={"path": "/srv/app/sub"}).status_code == 409  # not empty
    assert http.delete(files, params={"path": "/srv/app/sub", "recursive": "true"}).status_code == 204
    assert http.delete(files, params={"path": "/srv/app/etc-link"}).status_code == 204  # the link, not /etc
    assert ssh(address, "ls -A /srv/app; test -d /etc && echo etc-kept", pkey=key).split() == ["blob.bin", "etc-kept"]


def settled(http: httpx.Client, instance_id: str) -> dict[str, Any]:
    """Wait until the server runs with no action holding it; its newest action, which must have succeeded."""
    idle(http, instance_id, DEBIAN_BOOT_SECONDS)
    action: dict[str, Any] = http.get(f"/api/instances/{instance_id}/actions").json()[0]
    assert action["status"] == "success", action
    return action


def test_a_debian_server_is_reached_over_ssh_and_its_password_reset_upgrade_and_reinstall_show_inside(
        runtime: Runtime, node: LibvirtDriver, debian_template: int, cluster: GuestCluster) -> None:
    _process, url = cluster.serve()
    person = customer(runtime)
    key, public = new_key()
    with client(url, person) as http:
        certificate = certified(http, principals=["root"])  # signed before the servers: their seeds trust the CA
        saved = http.post("/api/ssh-keys", json={"name": "laptop", "public_key": public})
        assert saved.status_code == 201, saved.text
        body = order(runtime, person, "deb-1.example.com") | {"os_template_id": debian_template,
                                                              "ssh_key_ids": [saved.json()["id"]]}
        created = http.post("/api/instances", json=body)
        assert created.status_code == 201, created.text
        server = created.json()
        # a second one at the same time on Shardlyn's surface, with the key given inline
        other = http.post("/v1/instances", json={
            "name": "deb-2", "hostname": "deb-2.example.com", "plan": "scout-1", "region": "dc1",
            "template": "debian-12", "ssh_keys": [public], "root_password": PASSWORD})
        assert other.status_code in (200, 201), other.text
        second = http.get(f"/api/instances/{other.json()['id']}").json()
        for made in (server, second):
            idle(http, made["id"], DEBIAN_BOOT_SECONDS)
        assert ssh(second["main_ip"], "hostname -f; cat /root/.ssh/authorized_keys", pkey=key).splitlines() == [
            "deb-2.example.com", public]
        check_certificates(runtime, person, http, url, second["main_ip"], certificate)
        check_files(http, second["id"], second["main_ip"], key)
        http.request("DELETE", f"/api/instances/{second['id']}", json={"mode": "immediate"})
        address = server["main_ip"]
        facts = ssh(address, "hostname; hostname -f; cat /root/.ssh/authorized_keys; "
                             "getent shadow root | cut -d: -f2 | cut -c1-3; df --output=size -BG / | tail -n 1",
                    pkey=key)
        short, fqdn, keys, hash_kind, root_size = facts.splitlines()
        assert (short, fqdn) == ("deb-1", "deb-1.example.com")
        assert keys.strip() == public
        assert hash_kind == "$y$"  # the root password is set, hashed by the guest (yescrypt)
        assert int(root_size.strip().removesuffix("G")) >= 20  # grown from the image's 2 GiB to the plan's disk
        assert ssh(address, "whoami", password=PASSWORD).strip() == "root"
        with pytest.raises(paramiko.AuthenticationException):
            ssh(address, "whoami", password="not-" + PASSWORD)
        build = {t["name"]: t["detail"] for t in http.get(f"/api/instances/{server['id']}/actions").json()[0]["tasks"]}
        assert "guest agent answered" in build["wait_for_guest_agent"], build
        assert f"SSH answers on {address}:22" in build["verify_connectivity"], build

        # a new root password, set by the guest agent in the running server: no restart, the old one refused
        booted_at = ssh(address, "cat /proc/sys/kernel/random/boot_id", pkey=key)
        reset = http.post(f"/api/instances/{server['id']}/reset-password")
        assert reset.status_code == 200, reset.text
        assert (reset.json()["applied"], reset.json()["guest_agent"]) == ("now", True)
        assert settled(http, server["id"])["command"] == "reset_password"
        new = reset.json()["root_password"]
        assert ssh(address, "cat /proc/sys/kernel/random/boot_id", password=new) == booted_at
        with pytest.raises(paramiko.AuthenticationException):
            ssh(address, "whoami", password=PASSWORD)
        # the image's kernel hook (run by a kernel update or a new initramfs) puts the kernel and initramfs on the
        # partition SYSLINUX boots from; the upgrade's reboot below boots what it put there
        ssh(address, "rm /boot/cloudlet/vmlinuz /boot/cloudlet/initrd.img && "
                     "/etc/kernel/postinst.d/zz-cloudlet-boot $(uname -r) && "
                     "cmp /boot/vmlinuz-$(uname -r) /boot/cloudlet/vmlinuz && "
                     "cmp /boot/initrd.img-$(uname -r) /boot/cloudlet/initrd.img", pkey=key)
        # an upgrade with a reboot: the guest counts the new vCPUs and memory, and its root filesystem grew
        with runtime.db.session(write=False) as session:
            bigger = catalog.get_plan(session, "scout-2")  # 2 vCPU, 4 GiB, 60 GiB
        upgraded = http.post(f"/api/instances/{server['id']}/upgrade", json={"package_id": bigger.id, "reboot": True})
        assert upgraded.status_code == 200, upgraded.text
        assert settled(http, server["id"])["command"] == "upgrade"
        cpus, memory, grown = ssh(address, "nproc; grep MemTotal /proc/meminfo | tr -s ' ' | cut -d' ' -f2; "
                                           "df --output=size -BG / | tail -n 1", pkey=key).split()
        assert int(cpus) == 2 and int(memory) > 3_500_000 and int(grown.removesuffix("G")) >= 55

        # a reinstall: a fresh disk from the image, with the same address, hostname, key and password
        ssh(address, "touch /root/before-reinstall", pkey=key)
        reinstalled = http.post(f"/api/instances/{server['id']}/reinstall",
                                json={"os_template_id": debian_template, "os_name": "Debian 12"})
        assert reinstalled.status_code == 200, reinstalled.text
        assert settled(http, server["id"])["command"] == "reinstall"
        assert ssh(address, "hostname; test -e /root/before-reinstall && echo kept || echo fresh",
                   pkey=key).split() == ["deb-1", "fresh"]
        assert ssh(address, "whoami", password=new).strip() == "root"

        http.request("DELETE", f"/api/instances/{server['id']}", json={"mode": "immediate"})
        wait_for(lambda: status_of(http, server["id"]) == "gone", "the deletion", seconds=DELETION_SECONDS)
