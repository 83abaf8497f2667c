"""CyberPanel's general endpoints: health, a credential test, and the scope catalogue."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from cloudlet import __version__
from cloudlet.surfaces.cyberpanel.errors import envelope
from cloudlet.surfaces.cyberpanel.schemas import scope_names, scopes_catalogue
from cloudlet.surfaces.deps import AuthedCaller

router = APIRouter(prefix="/api/v1", tags=["cyberpanel"])


@router.get("/health", summary="Check if the API is operational (no authentication)")
def health() -> dict[str, Any]:
    """The service answers."""
    return envelope({"status": "healthy", "service": "Cloudlet Cloud API", "version": __version__})


@router.get("/test", summary="Verify your API key is working")
def test_key(caller: AuthedCaller) -> dict[str, Any]:
    """Echo what the presented key is and where it came from."""
    token = caller.token
    data = {
        "message": "API authentication successful!",
        "key_name": token.name if token else "session",
        "key_prefix": token.prefix if token else None,
        "user_email": caller.user.email,
        "scopes": scope_names(caller.abilities),
        "ip_address": caller.ip,
        # this request is counted after it is answered, so include it here
        "request_count": (token.request_count + 1) if token else None,
    }
    return envelope(data, "Your API key is working correctly")


@router.get("/scopes", summary="List available permission scopes (no authentication)")
def scopes() -> dict[str, Any]:
    """Every scope a key may carry."""
    return envelope({"scopes": scopes_catalogue()})
