"""Shardlyn surface: the operator's images registry.

    GET    /v1/admin/images          {"images": [...]}
    GET    /v1/admin/images/{id}     one image
    DELETE /v1/admin/images/{id}     204; 409 while an OS template points at it

Images are registered by `cloudlet images build/import` once the driver stored their base volume;
deleting one here forgets the record, and the base volume is removed on the node with
`cloudlet images` (the API process holds no hypervisor connection).
"""

from __future__ import annotations

from fastapi import APIRouter, Response
from pydantic import BaseModel

from cloudlet.images import service as images
from cloudlet.images.schemas import ImageRead
from cloudlet.surfaces.deps import AdminCaller, DbSession
from cloudlet.surfaces.params import PathId

router = APIRouter(prefix="/v1/admin/images", tags=["shardlyn"])


class ImageList(BaseModel):
    """Registered images."""

    images: list[ImageRead]


@router.get("", response_model=ImageList, summary="List images")
def admin_list_images(caller: AdminCaller, db: DbSession) -> ImageList:
    """Every registered image, with the OS templates that boot from it."""
    return ImageList(images=images.list_images(db))


@router.get("/{image_id}", response_model=ImageRead, summary="Get image")
def admin_get_image(image_id: PathId, caller: AdminCaller, db: DbSession) -> ImageRead:
    """One image."""
    return images.get_image(db, image_id)


@router.delete("/{image_id}", status_code=204, summary="Delete image")
def admin_delete_image(image_id: PathId, caller: AdminCaller, db: DbSession) -> Response:
    """Forget an image that no OS template points at."""
    images.delete_image(db, image_id)
    return Response(status_code=204)
