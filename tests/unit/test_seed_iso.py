"""The seed ISO carries the NoCloud files under their own names, on a volume labelled cidata."""

from __future__ import annotations

import io
from pathlib import Path

import pycdlib
import pytest

from cloudlet.drivers.base import GuestFailed, GuestReady
from cloudlet.drivers.seed import Seed, build_seed_iso, ready_in


def _files(iso_path: Path) -> tuple[str, dict[str, str]]:
    iso = pycdlib.PyCdlib()
    iso.open(str(iso_path))
    try:
        label = iso.pvd.volume_identifier.decode().strip()
        found = {}
        for child in iso.list_children(rr_path="/"):
            name = child.rock_ridge.name().decode() if child.rock_ridge else ""
            if name in ("", ".", ".."):
                continue
            out = io.BytesIO()
            iso.get_file_from_iso_fp(out, rr_path=f"/{name}")
            found[name] = out.getvalue().decode()
        return label, found
    finally:
        iso.close()


def test_the_seed_files_are_read_back_by_their_names_and_the_volume_is_cidata(tmp_path: Path) -> None:
    seed = Seed("instance-id: i-1\nlocal-hostname: web-1\n", "#cloud-config\nhostname: 'web-1'\n",
                "version: 2\nethernets: {}\n")
    label, files = _files(build_seed_iso(seed, tmp_path / "seed.iso"))
    assert label == "cidata"
    assert files == {"meta-data": seed.meta_data, "user-data": seed.user_data, "network-config": seed.network_config}


def test_a_seed_without_network_config_has_two_files(tmp_path: Path) -> None:
    _, files = _files(build_seed_iso(Seed("instance-id: i-2\n", "#cloud-config\n", None), tmp_path / "seed.iso"))
    assert sorted(files) == ["meta-data", "user-data"]


def test_a_seed_that_cannot_be_written_says_so_and_leaves_nothing(tmp_path: Path) -> None:
    target = tmp_path / "missing-directory" / "seed.iso"
    with pytest.raises(GuestFailed, match="could not write the seed image"):
        build_seed_iso(Seed("instance-id: i-3\n", "#cloud-config\n", None), target)
    assert not target.exists()


def test_a_ready_line_still_being_written_is_not_taken_for_the_guests_announcement() -> None:
    line = "CLOUDLET_READY instance-id=i-2 hostname=web address=203.0.113.5 keys=1 password=set"
    booting = "SeaBIOS\r\nLinux version 6.1\r\n"
    assert ready_in(booting + line[:27]) is None  # "CLOUDLET_READY instance-id=" and no more yet
    assert ready_in(booting + line) is None  # the line is whole, but not yet ended
    ready = ready_in(booting + line + "\r\nlogin: ")
    assert ready == GuestReady(instance_id="i-2", hostname="web", address="203.0.113.5", authorized_keys=1,
                               root_password_set=True)
