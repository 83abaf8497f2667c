"""CyberPanel VPS endpoints (filled in by the surface work)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/api/v1/vps", tags=["cyberpanel"])
