"""A node's guest listing skips a guest that another caller removes while the listing reads it."""

from __future__ import annotations

import libvirt
import pytest

from cloudlet.drivers.base import GuestState
from cloudlet.drivers.libvirt.domain_xml import METADATA_NS
from cloudlet.drivers.libvirt.guest import listed

CLOUDLET_XML = (f"<domain><metadata><cloudlet:guest xmlns:cloudlet='{METADATA_NS}'><cloudlet:spec>abc</cloudlet:spec>"
                "</cloudlet:guest></metadata></domain>")


def libvirt_error(code: int, message: str) -> libvirt.libvirtError:
    error = libvirt.libvirtError(message)
    error.err = (code, libvirt.VIR_FROM_QEMU, message, 2, None, None, None, 0, 0)
    return error


class Domain:
    """A listed domain; `fails` is what libvirt answers when its state is read, as for a domain just removed."""

    def __init__(self, name: str, xml: str = CLOUDLET_XML, fails: libvirt.libvirtError | None = None) -> None:
        self._name, self.xml, self.fails = name, xml, fails

    def name(self) -> str:
        return self._name

    def XMLDesc(self, flags: int) -> str:  # noqa: N802  # libvirt's name
        return self.xml

    def info(self) -> list[int]:
        if self.fails is not None:
            raise self.fails
        return [libvirt.VIR_DOMAIN_RUNNING, 262144, 262144, 1, 0]


def test_a_guest_of_cloudlet_is_listed_with_its_state_and_hardware() -> None:
    guest = listed(Domain("cloudlet-web"))  # type: ignore[arg-type]
    assert guest is not None
    assert (guest.name, guest.state, guest.vcpus, guest.memory_mib) == ("web", GuestState.RUNNING, 1, 256)


def test_a_domain_cloudlet_did_not_make_is_not_listed() -> None:
    assert listed(Domain("cloudlet-web", xml="<domain/>")) is None  # type: ignore[arg-type]
    assert listed(Domain("someone-else")) is None  # type: ignore[arg-type]


def test_a_guest_removed_between_the_listing_and_its_reading_is_not_listed() -> None:
    gone = libvirt_error(libvirt.VIR_ERR_NO_DOMAIN, "Domain not found: no domain with matching uuid")
    assert listed(Domain("cloudlet-web", fails=gone)) is None  # type: ignore[arg-type]


def test_any_other_failure_to_read_a_guest_is_not_hidden() -> None:
    broken = libvirt_error(libvirt.VIR_ERR_INTERNAL_ERROR, "internal error: something broke")
    with pytest.raises(libvirt.libvirtError, match="something broke"):
        listed(Domain("cloudlet-web", fails=broken))  # type: ignore[arg-type]
