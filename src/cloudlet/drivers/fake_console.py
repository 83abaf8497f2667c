"""The FakeDriver's consoles: a real RFB (VNC) server on 127.0.0.1 per guest, and a serial line that acts
like a getty, so the control plane's console proxies are tested against the protocols they speak.

Tests and simulations only. The VNC server offers VNC authentication alone (as QEMU's does once it has a
password), checks the password and its expiry, and shows a black 640x480 screen.
"""

from __future__ import annotations

import contextlib
import hmac
import os
import queue
import secrets
import socket
import struct
import threading
from collections.abc import Callable
from datetime import UTC, datetime

from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives.ciphers import Cipher, modes

from cloudlet.drivers.base import ConsoleClosed, VncEndpoint

WIDTH, HEIGHT = 640, 480
VNC_AUTH = 2
_CLIENT_MESSAGE_SIZES = {0: 20, 3: 10, 4: 8, 5: 6}  # SetPixelFormat, FramebufferUpdateRequest, KeyEvent, PointerEvent


def vnc_challenge_response(password: str, challenge: bytes) -> bytes:
    """RFB's VNC authentication: the challenge DES-encrypted with the password, each key byte's bits reversed.

    TripleDES keyed with the same 8 bytes three times is single DES, the only form `cryptography` keeps.
    """
    key = password.encode("latin-1", "replace")[:8].ljust(8, b"\0")
    reversed_bits = bytes(int(f"{byte:08b}"[::-1], 2) for byte in key)
    encryptor = Cipher(TripleDES(reversed_bits * 3), modes.ECB()).encryptor()  # noqa: S305  # RFB's protocol
    return encryptor.update(challenge) + encryptor.finalize()


def _read(conn: socket.socket, count: int) -> bytes:
    data = b""
    while len(data) < count:
        chunk = conn.recv(count - len(data))
        if not chunk:
            raise ConnectionError("the VNC client went away")
        data += chunk
    return data


class FakeVncServer:
    """One guest's VNC server: listens while the guest exists, lets clients in while it runs."""

    def __init__(self, name: str, running: Callable[[], bool]) -> None:
        self.name = name
        self._running = running
        self._password = secrets.token_urlsafe(6)  # as a real guest starts: a password nobody knows
        self._valid_until: datetime | None = None
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._socket = socket.create_server(("127.0.0.1", 0))
        self._socket.settimeout(0.2)
        self.endpoint = VncEndpoint("127.0.0.1", self._socket.getsockname()[1])
        threading.Thread(target=self._serve, name=f"fake-vnc-{name}", daemon=True).start()

    def set_password(self, password: str, valid_until: datetime) -> None:
        """Replace the password; it is refused after valid_until."""
        with self._lock:
            self._password, self._valid_until = password, valid_until

    def stop(self) -> None:
        """Stop listening."""
        self._stopped.set()

    def _serve(self) -> None:
        try:
            while not self._stopped.is_set():
                try:
                    conn, _address = self._socket.accept()
                except TimeoutError:
                    continue
                threading.Thread(target=self._session, args=(conn,), daemon=True).start()
        finally:
            self._socket.close()

    def _password_ok(self, challenge: bytes, response: bytes) -> bool:
        with self._lock:
            password, valid_until = self._password, self._valid_until
        fresh = valid_until is None or datetime.now(UTC) < valid_until
        return fresh and hmac.compare_digest(vnc_challenge_response(password, challenge), response)

    def _session(self, conn: socket.socket) -> None:
        with conn, contextlib.suppress(OSError, ConnectionError):
            conn.settimeout(300)
            if not self._running():
                return  # no guest, no display: the connection is refused by closing it
            conn.sendall(b"RFB 003.008\n")
            minor = int(_read(conn, 12)[8:11])
            if minor >= 7:
                conn.sendall(bytes([1, VNC_AUTH]))
                if _read(conn, 1)[0] != VNC_AUTH:
                    return
            else:  # 3.3: the server chooses
                conn.sendall(struct.pack(">I", VNC_AUTH))
            challenge = os.urandom(16)
            conn.sendall(challenge)
            if not self._password_ok(challenge, _read(conn, 16)):
                reason = b"Authentication failed"
                conn.sendall(struct.pack(">I", 1) + (struct.pack(">I", len(reason)) + reason if minor >= 8 else b""))
                return
            conn.sendall(struct.pack(">I", 0))
            _read(conn, 1)  # ClientInit
            title = f"Cloudlet fake ({self.name})".encode()
            pixel_format = struct.pack(">BBBBHHHBBB3x", 32, 24, 0, 1, 255, 255, 255, 16, 8, 0)
            conn.sendall(struct.pack(">HH", WIDTH, HEIGHT) + pixel_format + struct.pack(">I", len(title)) + title)
            self._messages(conn)

    def _messages(self, conn: socket.socket) -> None:
        bytes_per_pixel = 4
        while self._running():
            kind = _read(conn, 1)[0]
            if kind == 2:  # SetEncodings
                (count,) = struct.unpack(">xH", _read(conn, 3))
                _read(conn, 4 * count)
            elif kind == 6:  # ClientCutText
                (length,) = struct.unpack(">3xI", _read(conn, 7))
                _read(conn, length)
            elif kind in _CLIENT_MESSAGE_SIZES:
                body = _read(conn, _CLIENT_MESSAGE_SIZES[kind] - 1)
                if kind == 0:
                    bytes_per_pixel = max(1, body[3] // 8)
                elif kind == 3 and body[0] == 0:  # a full (not incremental) update: the black screen
                    rectangle = struct.pack(">HHHHi", 0, 0, WIDTH, HEIGHT, 0)  # raw encoding
                    conn.sendall(struct.pack(">BxH", 0, 1) + rectangle + bytes(WIDTH * HEIGHT * bytes_per_pixel))
            else:
                return  # not RFB: hang up, as a real server does


class FakeSerial:
    """A session on a fake guest's serial line: echoes what is typed, and answers each line with a login prompt."""

    def __init__(self, name: str, hostname: str, running: Callable[[], bool]) -> None:
        self.name = name
        self._prompt = f"\r\n{hostname.split('.')[0]} login: ".encode()
        self._running = running
        self._received: queue.Queue[bytes] = queue.Queue()
        self._ended = threading.Event()

    def end(self) -> None:
        """End the session from the node's side (taken over, guest gone)."""
        self._ended.set()

    def _live(self) -> bool:
        if not self._running():
            self._ended.set()
        return not self._ended.is_set()

    def read(self, timeout: float) -> bytes:
        """What the line printed since the last read."""
        chunks = []
        with contextlib.suppress(queue.Empty):
            chunks.append(self._received.get(timeout=timeout if self._live() else 0))
            while True:
                chunks.append(self._received.get_nowait())
        if not chunks and not self._live():
            raise ConsoleClosed(f"the serial console session of guest {self.name} has ended")
        return b"".join(chunks)

    def write(self, data: bytes) -> None:
        """Type data on the line."""
        if not self._live():
            raise ConsoleClosed(f"the serial console session of guest {self.name} has ended")
        for byte in data:
            self._received.put(self._prompt if byte in b"\r\n" else bytes([byte]))

    def close(self) -> None:
        """End the session."""
        self._ended.set()


class FakeConsoles:
    """The VNC servers and serial sessions of a FakeDriver's guests."""

    def __init__(self) -> None:
        self._vnc: dict[str, FakeVncServer] = {}
        self._serial: dict[str, FakeSerial] = {}
        self._lock = threading.Lock()

    def vnc(self, name: str, running: Callable[[], bool]) -> FakeVncServer:
        """The guest's VNC server, started on first use."""
        with self._lock:
            server = self._vnc.get(name)
            if server is None:
                server = self._vnc[name] = FakeVncServer(name, running)
            return server

    def attach(self, name: str, hostname: str, running: Callable[[], bool]) -> FakeSerial:
        """A new serial session; the one before ends."""
        session = FakeSerial(name, hostname, running)
        with self._lock:
            previous, self._serial[name] = self._serial.get(name), session
        if previous is not None:
            previous.end()
        return session

    def forget(self, name: str) -> None:
        """The guest is gone: stop its VNC server and end its serial session."""
        with self._lock:
            server, session = self._vnc.pop(name, None), self._serial.pop(name, None)
        if server is not None:
            server.stop()
        if session is not None:
            session.end()
