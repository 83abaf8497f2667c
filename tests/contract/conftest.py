"""The driver contract suite runs once per driver: the in-memory fake and the real libvirt node.

The libvirt half needs libvirtd with the "cloudlet" pool (`cloudlet node prepare`, which scripts/setup.sh
runs); without it the half skips, except in CI (CI=true), where it fails.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from cloudlet.drivers.base import HypervisorDriver
from cloudlet.drivers.fake import FakeDriver

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
IMAGE = "contract-tiny"


def _libvirt_driver() -> HypervisorDriver:
    try:
        from cloudlet.drivers.libvirt.guest import LibvirtDriver

        return LibvirtDriver()
    except Exception as error:
        message = (f"libvirt is not available ({type(error).__name__}: {error}); "
                   "run `cloudlet node prepare` (scripts/setup.sh does) to run the libvirt contract tests")
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture(scope="session")
def tiny_image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny guest image, built once per test session from the cached Debian packages."""
    from cloudlet.config import Settings
    from cloudlet.images.build import build_tiny

    if shutil.which("qemu-img") is None:
        pytest.skip("qemu-img is missing; run scripts/setup.sh")
    return build_tiny(Settings().data_dir / "cache", tmp_path_factory.mktemp("image") / "tiny.qcow2")


@pytest.fixture(scope="session")
def not_an_image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A file that is not a disk image."""
    path = tmp_path_factory.mktemp("junk") / "notes.txt"
    path.write_text("not a disk\n")
    return path


@pytest.fixture(scope="session")
def small_image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty 2 GiB qcow2, bigger than a 1 GiB disk."""
    path = tmp_path_factory.mktemp("small") / "big.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(path), "2G"], check=True)
    return path


@pytest.fixture(scope="session", params=["fake", "libvirt"])
def driver(request: pytest.FixtureRequest, tiny_image: Path) -> Iterator[HypervisorDriver]:
    """A driver with the tiny image imported as "contract-tiny"."""
    node: HypervisorDriver = FakeDriver() if request.param == "fake" else _libvirt_driver()
    node.delete_image(IMAGE)
    node.import_image(IMAGE, tiny_image)
    yield node
    for guest in node.list_guests():
        if guest.name.startswith("contract-"):
            node.destroy_guest(guest.name)
    node.delete_image(IMAGE)
    node.delete_image("contract-big")


def leftovers(driver: HypervisorDriver, name: str) -> list[str]:
    """What a driver still holds of guest name outside its guest list (volumes, console log and history, the
    record of its routed addresses)."""
    from cloudlet.drivers.libvirt.guest import LibvirtDriver

    if not isinstance(driver, LibvirtDriver):
        return []
    from cloudlet.drivers.libvirt import storage

    pool = storage.pool(driver._connection())
    pool.refresh(0)
    found = [volume for volume in pool.listVolumes() if volume.startswith(f"guest-{name}")]
    consoles = [driver.console_dir / f"{name}{suffix}"
                for suffix in (".log", ".history.log", ".history.log.partial", ".addresses")]
    return [*found, *(str(console) for console in consoles if console.exists())]
