"""The images registry: which guest images exist in the node's pool, and which OS templates boot them.

`cloudlet images build/import` stores the file through the driver first, then calls register_image
with the volume key the driver gave back; hypervisor ids stay in drivers/. os_templates.image_id has
no foreign key (the catalog's migration predates this table), so the link is kept here: an image
that a template points at cannot be deleted, and require_image checks an id before it is linked.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from pathlib import Path

from sqlalchemy.orm import Session

from cloudlet.catalog import service as catalog
from cloudlet.catalog.defaults import IMAGE_TEMPLATES, TEMPLATE_IMAGES
from cloudlet.catalog.schemas import TemplateUpdate
from cloudlet.drivers.base import ImageInfo
from cloudlet.images import repository
from cloudlet.images.models import Image, ImageCapability, ImageSource, ImageStatus
from cloudlet.images.schemas import ImageRead, ImageRegister
from cloudlet.kit.errors import Conflict, Invalid, NotFound

_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
_CHECKSUM = re.compile(r"^sha256:[0-9a-f]{64}$")


def file_checksum(path: Path) -> str:
    """The "sha256:<hex>" checksum of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return f"sha256:{digest.hexdigest()}"


def _templates_by_image(session: Session) -> dict[int, list[int]]:
    found: dict[int, list[int]] = {}
    for template in catalog.list_templates(session):
        if template.image_id is not None:
            found.setdefault(template.image_id, []).append(template.id)
    return found


def _read(image: Image, templates: dict[int, list[int]]) -> ImageRead:
    read = ImageRead.model_validate(image)
    read.template_ids = sorted(templates.get(image.id, []))
    return read


def _image(session: Session, image: int | str) -> Image:
    found = repository.get(session, image) if isinstance(image, int) else repository.by_name(session, image)
    if found is None:
        raise NotFound("image", image)
    return found


def register_image(session: Session, data: ImageRegister) -> ImageRead:
    """Record an image the driver stored; registering a name again (a rebuild) updates it in place."""
    name = data.name.strip()
    if not _NAME.match(name):
        raise Invalid("name", "An image name is 1-64 lower-case letters, digits, dots, hyphens or underscores, "
                              "starting with a letter or digit.")
    checksum = data.checksum.strip().lower()
    if checksum and not _CHECKSUM.match(checksum):
        raise Invalid("checksum", 'A checksum is "sha256:" and 64 hexadecimal digits.')
    capabilities = sorted(str(capability) for capability in data.capabilities)
    image = repository.by_name(session, name)
    if image is None:
        image = repository.insert(session, Image(
            name=name, format=data.format, source=data.source, virtual_size_bytes=data.virtual_size_bytes,
            file_size_bytes=data.file_size_bytes, checksum=checksum, volume=data.volume, os_family=data.os_family,
            capabilities=capabilities, status=ImageStatus.AVAILABLE))
    else:
        image.format, image.source, image.volume = data.format, data.source, data.volume
        image.virtual_size_bytes, image.file_size_bytes = data.virtual_size_bytes, data.file_size_bytes
        image.checksum, image.status = checksum, ImageStatus.AVAILABLE
        image.os_family, image.capabilities = data.os_family, capabilities
        repository.flush(session)
    return _read(image, _templates_by_image(session))


def register_from_driver(session: Session, info: ImageInfo, source: ImageSource, file: Path, *,
                         os_family: str = "linux", capabilities: Iterable[ImageCapability] = ()) -> ImageRead:
    """Record what driver.import_image stored from file: its volume, sizes, the file's checksum, and what the
    image is and can do."""
    return register_image(session, ImageRegister(
        name=info.name, source=source, volume=info.name, virtual_size_bytes=info.virtual_size_bytes,
        file_size_bytes=file.stat().st_size, checksum=file_checksum(file), os_family=os_family,
        capabilities=frozenset(capabilities)))


def list_images(session: Session) -> list[ImageRead]:
    """Every registered image by name."""
    templates = _templates_by_image(session)
    return [_read(i, templates) for i in repository.all_images(session)]


def get_image(session: Session, image: int | str) -> ImageRead:
    """One image by id or name."""
    return _read(_image(session, image), _templates_by_image(session))


def require_image(session: Session, image_id: int, field: str = "image_id") -> ImageRead:
    """The image an OS template is about to point at; Invalid when there is none (for the catalog)."""
    found = repository.get(session, image_id)
    if found is None:
        raise Invalid(field, f"There is no image {image_id}.")
    return _read(found, _templates_by_image(session))


def image_for_template(session: Session, template: int | str) -> ImageRead:
    """The available image an OS template boots from; Invalid when it has none (yet)."""
    found = catalog.get_template(session, template)
    image = repository.get(session, found.image_id) if found.image_id is not None else None
    if image is None or image.status is not ImageStatus.AVAILABLE:
        raise Invalid("os_template", f"OS template {found.code!r} has no available image yet.",
                      code="INVALID_TEMPLATE")
    return _read(image, _templates_by_image(session))


def delete_image(session: Session, image: int | str) -> ImageRead:
    """Forget an image no OS template points at; returns it so a caller with a driver removes the volume."""
    found = _image(session, image)
    templates = _templates_by_image(session)
    using = templates.get(found.id, [])
    if using:
        raise Conflict(f"Image {found.name!r} is used by OS template(s) {', '.join(map(str, sorted(using)))}; "
                       "point them at another image first.", code="IMAGE_IN_USE")
    read = _read(found, templates)
    repository.delete(session, found)
    return read


def link_default_templates(session: Session) -> list[str]:
    """Point the default catalogue's templates that have no image yet at their image, once it is registered,
    adding the template that is named after a built image (debian-12) when the catalogue lacks it.

    Returns the codes of the templates it linked; an operator's own choice is never overwritten.
    """
    for name, wanted in IMAGE_TEMPLATES.items():
        if repository.by_name(session, name) is None:
            continue
        try:
            catalog.get_template(session, wanted.code)
        except NotFound:
            catalog.create_template(session, wanted)
    linked = []
    for code, name in {**TEMPLATE_IMAGES, **{name: name for name in IMAGE_TEMPLATES}}.items():
        image = repository.by_name(session, name)
        try:
            template = catalog.get_template(session, code)
        except NotFound:
            continue
        if image is not None and template.image_id is None:
            catalog.update_template(session, template.id, TemplateUpdate(image_id=image.id))
            linked.append(code)
    return linked
