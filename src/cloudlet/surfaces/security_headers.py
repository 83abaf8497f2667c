"""Headers that tell browsers how to treat every answer: no sniffing, no framing, no referrer leaks, HSTS."""

from __future__ import annotations

import ipaddress

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cloudlet.config import Settings

HSTS = "max-age=31536000"  # a year; without includeSubDomains, which would bind the operator's other hosts
ALWAYS: dict[str, str] = {
    "X-Content-Type-Options": "nosniff",
    # The API and its docs are never meant to be framed (clickjacking); X-Frame-Options for older browsers.
    "Content-Security-Policy": "frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",  # links in the docs or answers must not carry our URLs elsewhere
}


def over_tls(scope: Scope, settings: Settings) -> bool:
    """Whether the request reached us over TLS: directly, from a configured proxy that says so, or by design."""
    if scope.get("scheme") in ("https", "wss") or settings.public_url.startswith("https://"):
        return True
    client = scope.get("client")
    if not client or not settings.trusted_proxies:
        return False
    try:
        peer = ipaddress.ip_address(client[0])
    except ValueError:
        return False
    # X-Forwarded-Proto is believed only from the proxies the operator listed, like X-Forwarded-For.
    if not any(peer in ipaddress.ip_network(proxy, strict=False) for proxy in settings.trusted_proxies):
        return False
    return Headers(scope=scope).get("x-forwarded-proto", "").split(",")[0].strip().lower() == "https"


def apply(headers: MutableHeaders, scope: Scope, settings: Settings) -> None:
    """Add the security headers an endpoint did not set itself."""
    add_missing(headers.raw, _RAW_TLS if over_tls(scope, settings) else _RAW)


def add_missing(raw: list[tuple[bytes, bytes]], extra: list[tuple[bytes, bytes]]) -> None:
    """Append the (lower-case name, value) pairs of extra whose name the raw header list lacks."""
    present = {name.lower() for name, _ in raw}
    raw.extend(pair for pair in extra if pair[0] not in present)


def encoded(headers: dict[str, str]) -> list[tuple[bytes, bytes]]:
    """Headers as ASGI's raw (lower-case name, value) byte pairs."""
    return [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers.items()]


# encoded once: every answer carries them
_RAW = encoded(ALWAYS)
_RAW_TLS = encoded({**ALWAYS, "Strict-Transport-Security": HSTS})


class SecurityHeaders:
    """Adds the security headers to every HTTP answer (errors included; 500s get them in surfaces/errors.py)."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                apply(MutableHeaders(scope=message), scope, self.settings)
            await send(message)

        await self.app(scope, receive, send_with_headers)
