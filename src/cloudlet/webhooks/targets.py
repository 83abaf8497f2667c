"""Which URLs a webhook may be sent to: http(s) only, and no internal addresses unless the operator allows.

A user aims the webhook, so without these checks Cloudlet would POST into its own network for them
(SSRF). The URL is checked when the delivery is queued (literal addresses and localhost names, so
the caller gets a clear 422 at once) and again before every attempt, after DNS resolution, against
every address the name resolves to. The request then goes to the address that was checked, so a
name that resolves differently a moment later cannot steer it inside.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass

import httpx

from cloudlet.kit.errors import Invalid

FIELD = "webhook_url"
MAX_URL_LENGTH = 2048
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class RefusedTarget(Exception):
    """The target resolves to an address webhooks may not reach; retrying will not help."""


@dataclass(frozen=True)
class Target:
    """Where to connect (a checked address) and what the request should still name (host, TLS SNI)."""

    url: httpx.URL  # the original URL with its host replaced by the checked address
    host_header: str
    sni_hostname: str


def refusal(address: IPAddress) -> str | None:
    """Why an address is off limits for webhooks, or None when it is a public unicast address."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    checks = (("loopback", address.is_loopback), ("link-local", address.is_link_local),
              ("multicast", address.is_multicast), ("unspecified", address.is_unspecified),
              ("private", address.is_private), ("reserved", address.is_reserved),
              ("not globally routable", not address.is_global))
    for reason, hit in checks:
        if hit:
            return reason
    return None


def _literal_address(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    try:  # the legacy IPv4 spellings a resolver also accepts: 2130706433, 127.1, 0x7f.0.0.1
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except OSError:
        return None


def check_url(url: str, *, allow_private: bool) -> httpx.URL:
    """Parse a webhook URL and refuse what can be refused without DNS; raises Invalid on webhook_url."""
    if len(url) > MAX_URL_LENGTH:
        raise Invalid(FIELD, f"The webhook URL must be at most {MAX_URL_LENGTH} characters.")
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError) as exc:
        raise Invalid(FIELD, f"The webhook URL is not a valid URL ({exc}).") from None
    if parsed.scheme not in {"http", "https"}:
        raise Invalid(FIELD, "The webhook URL must start with http:// or https://.")
    host = parsed.host.rstrip(".").lower()
    if not host:
        raise Invalid(FIELD, "The webhook URL has no host.")
    if allow_private:
        return parsed
    if host == "localhost" or host.endswith(".localhost"):
        raise Invalid(FIELD, "The webhook URL may not point at this machine (localhost).")
    address = _literal_address(host)
    if address is not None and (reason := refusal(address)) is not None:
        raise Invalid(FIELD, f"The webhook URL may not point at a {reason} address ({address}).")
    return parsed


def resolve(url: str, *, allow_private: bool) -> Target:
    """Resolve the URL's host and pick an address to connect to, refusing internal ones.

    Raises RefusedTarget when any address is off limits (or the URL no longer passes check_url),
    OSError when the name does not resolve (worth retrying).
    """
    try:
        parsed = check_url(url, allow_private=allow_private)
    except Invalid as exc:
        raise RefusedTarget(exc.message) from None
    host = parsed.host
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    addresses = [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]
    if not addresses:
        raise OSError(f"{host} resolves to no address")
    if not allow_private:
        for address in addresses:
            if (reason := refusal(address)) is not None:
                raise RefusedTarget(f"{host} resolves to a {reason} address ({address}); not sent")
    netloc = parsed.netloc.decode("ascii")
    return Target(url=parsed.copy_with(host=str(addresses[0])), host_header=netloc, sni_hostname=host)
