"""Reading a TCG guest's serial console until a string shows, nudging a line that stalls.

Under TCG on a busy 2-core machine the guest's serial line has been seen to stop in the middle of what it
was printing (a banner cut at "Cloudl", a shell prompt at "~") and stay silent for minutes, most likely the
guest's 8250 driver waiting for a transmit interrupt the emulated UART did not raise, until its next one.
A person at the console would press a key. When what arrived stops in the middle of a line and nothing
more comes for NUDGE_SECONDS, the reader sends an erase (DEL) onto the empty line that everything typed here
ends with: it erases nothing, and its receive interrupt lets the driver send the rest. A silence after a
whole line is the guest at work (login checking a password, say) and is left alone: a key typed then could
reach the program that reads the next line.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from websockets.sync.client import ClientConnection

NUDGE_SECONDS = 10.0
NUDGE = b"\x7f"  # DEL, the tty's erase character


def read_until(receive: Callable[[float], bytes | str], send: Callable[[bytes], None], wanted: tuple[str, ...],
               seconds: float) -> tuple[bool, str]:
    """What the console printed until one of wanted appeared (True) or seconds passed (False).

    receive(timeout) returns what arrived within timeout ("" or b"" for nothing); send(data) types on the line.
    """
    seen, deadline = "", time.monotonic() + seconds
    quiet_since = time.monotonic()
    while not any(w in seen for w in wanted):
        now = time.monotonic()
        if now >= deadline:
            return False, seen
        if seen and not seen.endswith("\n") and now - quiet_since >= NUDGE_SECONDS:  # cut mid-line
            send(NUDGE)
            quiet_since = now
        part = receive(min(0.5, deadline - now))
        if part:
            seen += part.decode(errors="replace") if isinstance(part, bytes) else part
            quiet_since = time.monotonic()
    return True, seen


def from_websocket(ws: ClientConnection) -> Callable[[float], bytes | str]:
    """receive() for read_until over a websocket client (binary or text frames)."""

    def receive(timeout: float) -> bytes | str:
        try:
            return ws.recv(timeout=timeout)
        except TimeoutError:
            return ""

    return receive
