"""The images registry: guest images stored as base volumes in a node's pool, which OS templates boot from."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import JSON, BigInteger, Enum, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from cloudlet.kit import clock
from cloudlet.kit.db import Base, UTCDateTime


def _enum(e: type[enum.Enum]) -> Enum:
    return Enum(e, native_enum=False, length=20, values_callable=lambda members: [str(m.value) for m in members])


class ImageFormat(enum.StrEnum):
    """The disk format of the base volume."""

    QCOW2 = "qcow2"


class ImageSource(enum.StrEnum):
    """How the image came to be: built here from Debian packages, or imported from a file."""

    BUILT = "built"
    IMPORTED = "imported"


class ImageCapability(enum.StrEnum):
    """What a guest booted from the image can do, beyond the serial readiness line every image prints."""

    CLOUD_INIT = "cloud_init"  # cloud-init applies the whole NoCloud seed (users, files, growpart)
    GUEST_AGENT = "guest_agent"  # the QEMU guest agent answers on its virtio channel
    SSH = "ssh"  # an SSH server listens on port 22


class ImageStatus(enum.StrEnum):
    """Whether guests can be built from the image."""

    AVAILABLE = "available"
    DISABLED = "disabled"


class Image(Base):
    """A guest image; `volume` is the opaque key the driver gave back for its base volume."""

    __tablename__ = "images"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    format: Mapped[ImageFormat] = mapped_column(_enum(ImageFormat), default=ImageFormat.QCOW2)
    source: Mapped[ImageSource] = mapped_column(_enum(ImageSource))
    virtual_size_bytes: Mapped[int] = mapped_column(BigInteger)
    file_size_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    checksum: Mapped[str] = mapped_column(String(80), default="")  # "sha256:<hex>" of the file stored
    volume: Mapped[str] = mapped_column(String(255))
    os_family: Mapped[str] = mapped_column(String(32), default="linux")  # "debian", "ubuntu"; "linux" when unknown
    capabilities: Mapped[list[str]] = mapped_column(JSON, default=list)  # ImageCapability values, sorted
    status: Mapped[ImageStatus] = mapped_column(_enum(ImageStatus), default=ImageStatus.AVAILABLE)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now, onupdate=clock.now)
