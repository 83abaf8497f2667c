"""SQL of the images registry."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from cloudlet.images.models import Image


def all_images(session: Session) -> list[Image]:
    """Every image by name."""
    return list(session.scalars(select(Image).order_by(Image.name)))


def get(session: Session, image_id: int) -> Image | None:
    """An image by id."""
    return session.get(Image, image_id)


def by_name(session: Session, name: str) -> Image | None:
    """An image by name."""
    return session.scalars(select(Image).where(Image.name == name)).first()


def insert(session: Session, image: Image) -> Image:
    """Add an image."""
    session.add(image)
    session.flush()
    return image


def flush(session: Session) -> None:
    """Write pending changes."""
    session.flush()


def delete(session: Session, image: Image) -> None:
    """Remove an image."""
    session.delete(image)
    session.flush()
