"""The images registry: images the driver stored, the OS templates that boot them, and its admin API."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import pytest
from pydantic import ValidationError

from cloudlet import catalogue_file
from cloudlet.catalog import service as catalog
from cloudlet.catalog.schemas import TemplateCreate, TemplateUpdate
from cloudlet.drivers.fake import FakeDriver
from cloudlet.images import service as images
from cloudlet.images.models import ImageCapability, ImageSource, ImageStatus
from cloudlet.images.schemas import ImageRead, ImageRegister
from cloudlet.kit.errors import Conflict, Invalid, NotFound
from cloudlet.surfaces.deps import Runtime
from tests.conftest import Api
from tests.helpers import Person, make_user


@pytest.fixture
def qcow2(tmp_path: Path) -> Path:
    """A small real qcow2 file (64 MiB virtual)."""
    path = tmp_path / "tiny.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(path), "64M"], check=True)
    return path


@pytest.fixture
def admin(runtime: Runtime) -> Person:
    return make_user(runtime, "root@example.com", admin=True)


def _stored(runtime: Runtime, qcow2: Path, name: str = "tiny") -> ImageRead:
    driver = FakeDriver()
    info = driver.import_image(name, qcow2)
    with runtime.db.session() as session:
        return images.register_from_driver(session, info, ImageSource.BUILT, qcow2)


def _template(runtime: Runtime, code: str, image_id: int | None) -> int:
    with runtime.db.session() as session:
        return catalog.create_template(session, TemplateCreate(code=code, family="debian", name=code,
                                                               image_id=image_id)).id


def test_an_image_the_driver_stored_is_registered_with_its_volume_size_and_checksum(
        runtime: Runtime, qcow2: Path) -> None:
    image = _stored(runtime, qcow2)
    assert (image.name, image.volume, image.format, image.source, image.status) == (
        "tiny", "tiny", "qcow2", ImageSource.BUILT, ImageStatus.AVAILABLE)
    assert image.virtual_size_bytes == 64 * 2**20
    assert image.file_size_bytes == qcow2.stat().st_size
    assert image.checksum == "sha256:" + hashlib.sha256(qcow2.read_bytes()).hexdigest()
    with runtime.db.session(write=False) as session:
        assert images.get_image(session, "tiny") == images.get_image(session, image.id) == image
        assert [i.name for i in images.list_images(session)] == ["tiny"]


def test_registering_a_name_again_updates_the_image_in_place(runtime: Runtime, qcow2: Path) -> None:
    first = _stored(runtime, qcow2)
    with runtime.db.session() as session:
        again = images.register_image(session, ImageRegister(
            name="tiny", source=ImageSource.IMPORTED, volume="tiny", virtual_size_bytes=2 * 2**30,
            checksum="SHA256:" + "A" * 64))
    assert again.id == first.id
    assert (again.source, again.virtual_size_bytes, again.checksum) == (
        ImageSource.IMPORTED, 2 * 2**30, "sha256:" + "a" * 64)


def test_what_an_image_is_and_can_do_is_kept_as_data(runtime: Runtime, qcow2: Path) -> None:
    plain = _stored(runtime, qcow2)
    assert (plain.os_family, plain.capabilities) == ("linux", [])  # the tiny image: serial readiness only
    info = FakeDriver().import_image("debian-12", qcow2)
    with runtime.db.session() as session:
        debian = images.register_from_driver(session, info, ImageSource.BUILT, qcow2, os_family="debian",
                                             capabilities={ImageCapability.SSH, ImageCapability.GUEST_AGENT,
                                                           ImageCapability.CLOUD_INIT})
    with runtime.db.session(write=False) as session:
        assert images.get_image(session, "debian-12") == debian
    assert debian.os_family == "debian"
    assert debian.capabilities == ["cloud_init", "guest_agent", "ssh"]
    with runtime.db.session() as session, pytest.raises(ValidationError):
        images.register_image(session, ImageRegister(name="x", source=ImageSource.IMPORTED, volume="x",
                                                     virtual_size_bytes=1, os_family="Debian; drop"))


def test_a_built_debian_image_brings_its_template_and_an_operators_choice_stays(
        runtime: Runtime, qcow2: Path) -> None:
    with runtime.db.session() as session:
        catalogue_file.seed_default(session)
        assert images.link_default_templates(session) == []  # no image yet: nothing to link, nothing added
        with pytest.raises(NotFound):
            catalog.get_template(session, "debian-12")
    tiny, debian = _stored(runtime, qcow2), _stored(runtime, qcow2, "debian-12")
    with runtime.db.session() as session:
        assert sorted(images.link_default_templates(session)) == ["debian-12", "debian-12-tiny"]
        template = catalog.get_template(session, "debian-12")
        assert (template.image_id, template.family, template.min_disk_gb) == (debian.id, "debian", 3)
        assert catalog.get_template(session, "debian-12-tiny").image_id == tiny.id
        catalog.update_template(session, template.id, TemplateUpdate(image_id=tiny.id))  # the operator's choice
    with runtime.db.session() as session:
        assert images.link_default_templates(session) == []
        assert catalog.get_template(session, "debian-12").image_id == tiny.id


def test_image_names_and_checksums_are_checked(runtime: Runtime) -> None:
    with runtime.db.session() as session:
        for bad in ("Tiny", "-tiny", "tiny image", "../etc"):
            with pytest.raises(Invalid) as refused:
                images.register_image(session, ImageRegister(name=bad, source=ImageSource.IMPORTED, volume=bad,
                                                             virtual_size_bytes=1))
            assert refused.value.field == "name"
        with pytest.raises(Invalid) as checksum:
            images.register_image(session, ImageRegister(name="deb", source=ImageSource.IMPORTED, volume="deb",
                                                         virtual_size_bytes=1, checksum="md5:abc"))
        assert checksum.value.field == "checksum"
        assert images.list_images(session) == []


def test_templates_link_to_images_and_an_image_in_use_cannot_be_deleted(runtime: Runtime, qcow2: Path) -> None:
    image = _stored(runtime, qcow2)
    bare = _template(runtime, "bare-1", None)
    linked = _template(runtime, "debian-12-tiny", image.id)
    with runtime.db.session() as session:
        assert images.image_for_template(session, "debian-12-tiny").id == image.id
        assert images.image_for_template(session, linked).volume == "tiny"
        with pytest.raises(Invalid) as none:
            images.image_for_template(session, bare)
        assert none.value.code == "INVALID_TEMPLATE"
        assert images.get_image(session, image.id).template_ids == [linked]
        assert images.require_image(session, image.id).id == image.id
        with pytest.raises(Invalid):
            images.require_image(session, image.id + 100)
        with pytest.raises(Conflict) as in_use:
            images.delete_image(session, image.id)
        assert in_use.value.code == "IMAGE_IN_USE"
    with runtime.db.session() as session:
        catalog.update_template(session, linked, TemplateUpdate(image_id=None))
        removed = images.delete_image(session, image.id)
        assert removed.volume == "tiny"  # for the caller that removes the base volume
        with pytest.raises(NotFound):
            images.get_image(session, image.id)


def test_admins_list_read_and_delete_images_over_shardlyn(
        api: Api, runtime: Runtime, admin: Person, qcow2: Path) -> None:
    image = _stored(runtime, qcow2)
    template = _template(runtime, "debian-12-tiny", image.id)
    client = api.as_(admin.token)
    listed = client.get("/v1/admin/images")
    assert listed.status_code == 200
    assert [(i["id"], i["name"], i["source"], i["template_ids"]) for i in listed.json()["images"]] == [
        (image.id, "tiny", "built", [template])]
    one = client.get(f"/v1/admin/images/{image.id}").json()
    assert (one["volume"], one["format"], one["status"], one["checksum"]) == (
        "tiny", "qcow2", "available", image.checksum)
    assert (one["os_family"], one["capabilities"]) == ("linux", [])
    refused = client.delete(f"/v1/admin/images/{image.id}")
    assert refused.status_code == 409
    assert str(template) in refused.json()["error"]
    assert client.put(f"/v1/admin/os-templates/{template}", json={"image_id": None}).status_code == 200
    assert client.delete(f"/v1/admin/images/{image.id}").status_code == 204
    # a template cannot point at an image that is not registered
    unknown = client.put(f"/v1/admin/os-templates/{template}", json={"image_id": image.id})
    assert unknown.status_code == 400 and f"no image {image.id}" in unknown.json()["error"]
    missing = client.get(f"/v1/admin/images/{image.id}")
    assert missing.status_code == 404 and "error" in missing.json()
    # a path id that is no id names no image: 404 in Shardlyn's format, as an id out of range does
    not_an_id = client.get("/v1/admin/images/not-a-number")
    assert not_an_id.status_code == 404 and "error" in not_an_id.json()


def test_only_administrators_see_the_images_registry(api: Api, runtime: Runtime, qcow2: Path) -> None:
    image = _stored(runtime, qcow2)
    customer = api.as_(make_user(runtime, "alice@example.com").token)
    assert customer.get("/v1/admin/images").status_code == 403
    assert customer.delete(f"/v1/admin/images/{image.id}").status_code == 403
    assert api.get("/v1/admin/images").status_code == 401
    with runtime.db.session(write=False) as session:
        assert images.get_image(session, image.id).id == image.id


def test_a_debian_build_that_fails_leaves_no_half_image(tmp_path: Path) -> None:
    from cloudlet.images.debian import build_debian

    target = tmp_path / "images" / "debian-12.qcow2"
    with pytest.raises(RuntimeError, match="mmdebstrap"):
        build_debian("debian-12", "http://127.0.0.1:9/debian", tmp_path / "cache", target)  # nothing listens there
    assert list(target.parent.iterdir()) == []  # no image, no partial file, no build tree
