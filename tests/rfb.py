"""A minimal RFB (VNC) client for tests: protocol version, security types, VNC authentication, ServerInit.

VNC authentication encrypts the server's 16-byte challenge with DES, keyed by the password with each
byte's bits reversed. `cryptography` keeps DES only as TripleDES; with the same 8-byte key three times
(encrypt, decrypt, encrypt) TripleDES is single DES, which is what this uses.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass

from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives.ciphers import Cipher, modes

VNC_AUTH = 2


class RfbRefused(Exception):
    """The server refused the connection or the authentication, with its reason."""


@dataclass
class ServerInit:
    """What the server says once the client is in."""

    version: bytes
    security_types: list[int]
    width: int
    height: int
    bits_per_pixel: int
    name: str


def vnc_response(password: str, challenge: bytes) -> bytes:
    """The answer to a VNC authentication challenge."""
    key = password.encode("latin-1")[:8].ljust(8, b"\0")
    reversed_bits = bytes(int(f"{byte:08b}"[::-1], 2) for byte in key)
    encryptor = Cipher(TripleDES(reversed_bits * 3), modes.ECB()).encryptor()  # noqa: S305  # RFB's protocol
    return encryptor.update(challenge) + encryptor.finalize()


class Transport:
    """Exact reads over something that delivers bytes in chunks of its own size."""

    def __init__(self, receive: Callable[[], bytes], send: Callable[[bytes], None]) -> None:
        self._receive = receive
        self.send = send
        self._buffer = b""

    def read(self, count: int) -> bytes:
        """Exactly count bytes; EOFError when the other side closes first."""
        while len(self._buffer) < count:
            chunk = self._receive()
            if not chunk:
                raise EOFError(f"closed after {len(self._buffer)} of {count} bytes")
            self._buffer += chunk
        data, self._buffer = self._buffer[:count], self._buffer[count:]
        return data


def over_socket(sock: socket.socket) -> Transport:
    """RFB straight over TCP (a VNC server's own port)."""
    return Transport(lambda: sock.recv(65536), sock.sendall)


def _reason(transport: Transport) -> str:
    (length,) = struct.unpack(">I", transport.read(4))
    return transport.read(length).decode("utf-8", "replace")


def security_types(transport: Transport) -> tuple[bytes, list[int]]:
    """Read the server's version, answer 3.8 and read the security types it offers."""
    version = transport.read(12)
    if not version.startswith(b"RFB 003."):
        raise RfbRefused(f"not an RFB server: {version!r}")
    transport.send(b"RFB 003.008\n")
    (count,) = transport.read(1)
    if count == 0:
        raise RfbRefused(_reason(transport))
    return version, list(transport.read(count))


def handshake(transport: Transport, password: str) -> ServerInit:
    """Version, VNC authentication with password, ClientInit (shared) and the ServerInit that follows."""
    version, offered = security_types(transport)
    if VNC_AUTH not in offered:
        raise RfbRefused(f"the server does not offer VNC authentication: {offered}")
    transport.send(bytes([VNC_AUTH]))
    challenge = transport.read(16)
    transport.send(vnc_response(password, challenge))
    (result,) = struct.unpack(">I", transport.read(4))
    if result != 0:
        raise RfbRefused(_reason(transport))
    transport.send(b"\x01")  # ClientInit: share the desktop
    width, height, bits_per_pixel = struct.unpack(">HHB", transport.read(5))
    transport.read(15)  # the rest of the pixel format
    name = _reason(transport)
    return ServerInit(version, offered, width, height, bits_per_pixel, name)
