"""The edges' fallback for ACME HTTP-01: GET /.well-known/acme-challenge/{token} answers the key authorization of a
running certificate order (edge/certificates.py), as plain text, to any edge that does not hold the token
itself (the order ran on another machine's worker); any other token is a plain 404. No credential: the CA asks
through an edge, and a key authorization is public by design (RFC 8555, 8.3)."""

from __future__ import annotations

import re

from fastapi import APIRouter
from fastapi.responses import PlainTextResponse

from cloudlet.edge import service as edge
from cloudlet.kit.errors import NotFound
from cloudlet.surfaces.deps import DbSession

router = APIRouter(tags=["shardlyn", "edge"])  # a root path: Shardlyn's, as /health is

TOKEN = re.compile(r"[A-Za-z0-9_-]{1,128}")  # base64url, as RFC 8555 makes tokens


@router.get("/.well-known/acme-challenge/{token}", response_class=PlainTextResponse,
            summary="An ACME HTTP-01 key authorization (for the WAF edges)")
def key_authorization(token: str, db: DbSession) -> PlainTextResponse:
    """The key authorization of a running order's challenge, or 404."""
    if not TOKEN.fullmatch(token):
        return PlainTextResponse("not found\n", status_code=404)
    try:
        return PlainTextResponse(edge.key_authorization(db, token))
    except NotFound:
        return PlainTextResponse("not found\n", status_code=404)
