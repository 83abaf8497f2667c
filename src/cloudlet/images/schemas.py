"""What the images registry takes and gives back."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from cloudlet.images.models import ImageCapability, ImageFormat, ImageSource, ImageStatus

OS_FAMILY = r"^[a-z][a-z0-9-]{0,31}$"  # "debian", "ubuntu", "linux"


class ImageRegister(BaseModel):
    """An image the driver has just stored as a base volume (by `cloudlet images build/import`)."""

    name: str = Field(min_length=1, max_length=64)
    source: ImageSource
    volume: str = Field(min_length=1, max_length=255)  # the opaque key the driver gave back
    virtual_size_bytes: int = Field(gt=0)
    file_size_bytes: int = Field(default=0, ge=0)
    checksum: str = Field(default="", max_length=80)  # "sha256:<64 hex>", or empty when unknown
    format: ImageFormat = ImageFormat.QCOW2
    os_family: str = Field(default="linux", pattern=OS_FAMILY)
    capabilities: frozenset[ImageCapability] = frozenset()


class ImageRead(BaseModel):
    """A registered image, with the OS templates that boot from it."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    format: ImageFormat
    source: ImageSource
    virtual_size_bytes: int
    file_size_bytes: int
    checksum: str
    volume: str
    os_family: str
    capabilities: list[ImageCapability]
    status: ImageStatus
    created_at: datetime
    updated_at: datetime
    template_ids: list[int] = []
