"""One contract, two drivers: what the worker may rely on from any hypervisor node.

One guest per driver boots for the whole module (under TCG a boot takes about 5 s), so the tests run in
file order: build, idempotent rebuild, power actions, and finally destroy.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from cloudlet.drivers.base import (
    GuestFailed,
    GuestNetwork,
    GuestNotFound,
    GuestSpec,
    GuestState,
    HypervisorDriver,
    ImageNotFound,
)
from tests.contract.conftest import IMAGE, leftovers

BOOT = 90.0  # seconds; generous for TCG on a loaded machine
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeKeyForTheContractSuiteOnly contract@cloudlet"
SPEC = GuestSpec(name="contract-web", image=IMAGE, vcpus=1, memory_mib=256, disk_gib=2, hostname="contract-web",
                 root_password="It's a s3cret!", ssh_authorized_keys=(KEY,), instance_id="i-contract-1",
                 network=GuestNetwork(address="198.51.100.23/24", gateway="198.51.100.1"))


@pytest.fixture(scope="module")
def guest(driver: HypervisorDriver) -> str:
    """The module's guest, built and booted once per driver."""
    driver.destroy_guest(SPEC.name)
    driver.create_guest(SPEC)
    return SPEC.name


def test_a_created_guest_boots_and_applies_its_seed(driver: HypervisorDriver, guest: str) -> None:
    ready = driver.wait_ready(guest, BOOT)
    assert ready.instance_id == "i-contract-1"
    assert ready.hostname == "contract-web"
    assert ready.address == "198.51.100.23"
    assert ready.authorized_keys == 1
    assert ready.root_password_set is True
    assert driver.state(guest) == GuestState.RUNNING
    assert "CLOUDLET_READY" in driver.console_output(guest).text


def test_creating_the_same_guest_again_changes_nothing(driver: HypervisorDriver, guest: str) -> None:
    before = driver.console_output(guest).text
    driver.create_guest(SPEC)
    assert [info.name for info in driver.list_guests() if info.name == guest] == [guest]
    assert driver.state(guest) == GuestState.RUNNING
    assert driver.console_output(guest).text.startswith(before)  # not rebooted


def test_a_different_guest_under_the_same_name_is_refused(driver: HypervisorDriver, guest: str) -> None:
    with pytest.raises(GuestFailed):
        driver.create_guest(GuestSpec(**{**SPEC.__dict__, "vcpus": 2}))
    assert driver.state(guest) == GuestState.RUNNING


def test_the_listing_shows_the_guest_with_its_size(driver: HypervisorDriver, guest: str) -> None:
    [info] = [info for info in driver.list_guests() if info.name == guest]
    assert (info.state, info.vcpus, info.memory_mib) == (GuestState.RUNNING, 1, 256)


def test_stats_count_what_the_guest_did(driver: HypervisorDriver, guest: str) -> None:
    stats = driver.stats(guest)
    assert stats.cpu_time_ns > 0
    assert stats.disk_read_bytes > 0  # the kernel and initramfs came off the disk
    assert stats.disk_capacity_bytes == 2 * 1024**3  # the overlay is grown to the plan's disk
    assert 0 < stats.disk_allocation_bytes < 64 * 1024**2  # copy-on-write: the image is not copied
    assert (stats.vcpus, stats.memory_mib) == (1, 256)


def test_shutdown_and_start_again(driver: HypervisorDriver, guest: str) -> None:
    driver.shutdown(guest, timeout=30)
    assert driver.state(guest) == GuestState.STOPPED
    driver.shutdown(guest, timeout=30)  # already off: fine
    assert driver.stats(guest).cpu_time_ns == 0
    driver.start(guest)
    assert driver.wait_ready(guest, BOOT).hostname == "contract-web"
    driver.start(guest)  # already on: fine
    assert driver.state(guest) == GuestState.RUNNING


def test_reboot_comes_back_ready(driver: HypervisorDriver, guest: str) -> None:
    driver.reboot(guest)
    assert driver.wait_ready(guest, BOOT).instance_id == "i-contract-1"
    assert driver.state(guest) == GuestState.RUNNING


def test_poweroff_cuts_the_power_and_a_stopped_guest_is_not_ready(driver: HypervisorDriver, guest: str) -> None:
    driver.poweroff(guest)
    driver.poweroff(guest)
    assert driver.state(guest) == GuestState.STOPPED
    with pytest.raises(GuestFailed):
        driver.wait_ready(guest, 1)
    driver.create_guest(SPEC)  # the same spec again starts it
    assert driver.wait_ready(guest, BOOT).address == "198.51.100.23"


def test_destroy_removes_the_guest_and_everything_it_had(driver: HypervisorDriver, guest: str) -> None:
    driver.destroy_guest(guest)
    assert guest not in [info.name for info in driver.list_guests()]
    assert leftovers(driver, guest) == []
    with pytest.raises(GuestNotFound):
        driver.state(guest)
    driver.destroy_guest(guest)  # already gone: fine


def test_power_actions_on_a_missing_guest_say_so(driver: HypervisorDriver) -> None:
    for action in (driver.state, driver.start, driver.poweroff, driver.reboot, driver.stats, driver.console_output):
        with pytest.raises(GuestNotFound):
            action("contract-nobody")


def test_an_unknown_image_builds_nothing(driver: HypervisorDriver) -> None:
    with pytest.raises(ImageNotFound):
        driver.create_guest(GuestSpec(**{**SPEC.__dict__, "name": "contract-orphan", "image": "no-such-image"}))
    assert "contract-orphan" not in [info.name for info in driver.list_guests()]
    assert leftovers(driver, "contract-orphan") == []


def test_a_disk_smaller_than_its_image_is_refused_and_cleaned_up(driver: HypervisorDriver, small_image: Path) -> None:
    driver.import_image("contract-big", small_image)
    with pytest.raises(GuestFailed):
        driver.create_guest(GuestSpec(**{**SPEC.__dict__, "name": "contract-small", "image": "contract-big",
                                         "disk_gib": 1}))
    assert "contract-small" not in [info.name for info in driver.list_guests()]
    assert leftovers(driver, "contract-small") == []


def test_images_import_idempotently_and_refuse_what_is_not_qcow2(driver: HypervisorDriver, tiny_image: Path,
                                                                  not_an_image: Path) -> None:
    again = driver.import_image(IMAGE, tiny_image)
    assert again.virtual_size_bytes == 64 * 1024**2
    assert [image.name for image in driver.list_images()].count(IMAGE) == 1
    with pytest.raises(GuestFailed):
        driver.import_image("contract-junk", not_an_image)
    assert "contract-junk" not in [image.name for image in driver.list_images()]
