"""Reading a TCG guest's serial console until a string shows, nudging a line that stalls.

Under TCG on a busy 2-core machine the guest's serial line has been seen to stop in the middle of what it
was printing (a banner cut at "Cloudl", a shell prompt at "~") and stay silent for minutes, most likely the
guest's 8250 driver waiting for a transmit interrupt the emulated UART did not raise, until its next one.
A person at the console would press a key. When what arrived stops in the middle of a line and nothing
more comes for NUDGE_SECONDS, the reader sends an erase (DEL) onto the empty line that everything typed here
ends with: it erases nothing, and its receive interrupt lets the driver send the rest. A silence after a
whole line is the guest at work (login checking a password, say) and is left alone: a key typed then could
reach the program that reads the next line.

Later runs showed a second cause, on the host: the console log (which QEMU writes itself) held the rest of
the line and more, while the session's libvirt console stream had stopped delivering. Not yet explained;
the likeliest is QEMU's pty backend, which logs but drops what the guest writes while it believes no one
holds the pty open (it looks again only once a second), as between one session's end and the next one's
start. log_in presses Enter again until a login prompt shows, and from_log reads the guest's answers
from the log.
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


def from_log(read_text: Callable[[], str], poll_seconds: float = 0.05) -> Callable[[float], bytes | str]:
    """receive() for read_until over what the guest printed on its serial line since this was made, read from
    the console log the node keeps (read_text: its whole text since the guest started) instead of a console
    session. QEMU writes that log itself; a session's stream has been seen to stop delivering in the middle
    of a line while the log went on (see the module's notes), so tests that only need the guest's answers
    read them here and use the session to type."""
    offset = len(read_text())

    def receive(timeout: float) -> str:
        nonlocal offset
        deadline = time.monotonic() + timeout
        while True:
            text = read_text()
            if len(text) > offset:
                new, offset = text[offset:], len(text)
                return new
            if time.monotonic() >= deadline:
                return ""
            time.sleep(poll_seconds)

    return receive


NAME_ATTEMPTS = 3
NAME_ECHO_SECONDS = 20.0  # a typed name is echoed, and the password prompt follows, within this on a busy machine
ENTER_AGAIN_SECONDS = 5.0  # Enter is pressed again when no login prompt came within this
RETRY_PROMPT_SECONDS = 20.0  # a refused login prints its next prompt within this (login waits a few seconds first)


def log_in(receive: Callable[[float], bytes | str], send: Callable[[bytes], None], password: str,
           answers: tuple[str, ...], seconds: float) -> tuple[str, str]:
    """Log in as root at the guest's getty: what it printed up to the password prompt, and what it printed
    after the password up to one of answers ("" when no password prompt came).

    Enter makes a waiting getty print its banner and prompt again (pressed again until a login prompt
    shows: what the guest prints in a new session's first moment has been seen to get lost), and the name
    typed next is read after that; but a getty that is just (re)starting (after a boot, or after the last
    session's shell exited) waits a moment and flushes its input, so a name typed then is lost and its
    prompt stays silent. As a person would, the name is typed again when a login prompt has been the last
    thing printed for NAME_ECHO_SECONDS (a few times at most). A password prompt that stops half-printed
    ("Pas") and stays so despite the nudge is answered as a person would: Enter, which login takes for a
    wrong password, then the next prompt and the name again. The password is typed once a whole prompt
    shows, and only once, so a refused one is reported.
    """
    deadline, before, found = time.monotonic() + seconds, "", False
    while not found and time.monotonic() < deadline:  # what a session's first moment carries can be lost
        send(b"\r")
        found, seen = read_until(receive, send, ("login: ",), min(ENTER_AGAIN_SECONDS, deadline - time.monotonic()))
        before += seen
    for _attempt in range(NAME_ATTEMPTS):
        if not found:
            break
        send(b"root\r")
        found, seen = read_until(receive, send, ("Password: ",), NAME_ECHO_SECONDS)
        before += seen
        if found:
            send(password.encode() + b"\r")
            return before, read_until(receive, send, answers, seconds)[1]
        found = before.endswith("login: ")  # the name was lost: type it again
        if not found:  # stalled in the middle of the password prompt: Enter ends the attempt
            send(b"\r")
            found, seen = read_until(receive, send, ("login: ",), RETRY_PROMPT_SECONDS)
            before += seen
    return before, ""
