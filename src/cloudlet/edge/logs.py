"""What the edge saw of each app, read from the logs its nginx writes (edge/nginx.py's Layout): the app's access
log (JSON lines: one per request its server blocks answered) and its ModSecurity JSON audit log (the requests
the rule set flagged; those a deciding CRS rule blocked are kept). Reading follows a log renamed to name.1 or
truncated in place (copytruncate), and a long backlog is read over several calls."""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from cloudlet.edge.nginx import Layout

MAX_READ = 32 * 1024 * 1024  # of one log per traffic() call: a long backlog is read over several calls
# In CRS 3.3's anomaly scoring these rules decide; a transaction logged without one was flagged, not blocked.
DECIDING_RULES = frozenset({949110, 959100, 200002, 200003, 200004, 200005, 200007})
_BOOKKEEPING = ((949000, 949999), (959000, 959999), (980000, 980999))  # scores and correlation, not attacks


@dataclass(frozen=True)
class _Position:
    inode: int = 0
    offset: int = 0


@dataclass(frozen=True)
class Offsets:
    """Where traffic() stopped reading an app's two logs (opaque; encode() and decode() to keep it)."""

    access: _Position = field(default_factory=_Position)
    audit: _Position = field(default_factory=_Position)

    def encode(self) -> str:
        """A short text to store between runs."""
        return f"{self.access.inode}:{self.access.offset}:{self.audit.inode}:{self.audit.offset}"

    @classmethod
    def decode(cls, text: str) -> Offsets:
        """The offsets encode() wrote (the start of both logs for anything else)."""
        try:
            a, b, c, d = (int(part) for part in text.split(":"))
        except ValueError:
            return cls()
        return cls(_Position(a, b), _Position(c, d))


@dataclass(frozen=True)
class BlockedRequest:
    """A request the WAF refused."""

    at: datetime  # UTC
    client: str
    rule_id: int | None  # the CRS rule that decided (e.g. 942100 for SQL injection), or the first matched
    uri: str
    message: str


@dataclass(frozen=True)
class Traffic:
    """What an app's server blocks saw between two reads."""

    requests: int  # requests the app's server block answered since `offset`
    blocked: list[BlockedRequest]
    offset: Offsets  # where to read from next time


def _read_file(path: Path, start: int) -> bytes:
    with path.open("rb") as handle:
        handle.seek(start)
        return handle.read(MAX_READ)


def _new_lines(path: Path, since: _Position) -> tuple[list[bytes], _Position]:
    """Whole lines written to path after since (up to MAX_READ), following a rename (name.1) or a truncation."""
    data = b""
    try:
        info = path.stat()
    except FileNotFoundError:
        info = None
    start = since.offset
    if since.inode and (info is None or info.st_ino != since.inode):
        rotated = path.with_name(path.name + ".1")
        with contextlib.suppress(OSError):
            if rotated.stat().st_ino == since.inode:  # the rest of the file we were reading, renamed
                tail = _read_file(rotated, since.offset)
                data = tail[: tail.rfind(b"\n") + 1]
        start = 0
    if info is None:
        return data.splitlines(), _Position()
    if info.st_size < start:  # truncated in place: it starts again
        start = 0
    fresh = _read_file(path, start)
    whole = fresh.rfind(b"\n") + 1  # a line still being written is read next time
    return (data + fresh[:whole]).splitlines(), _Position(info.st_ino, start + whole)


def _rule_id(message: dict[str, object]) -> int | None:
    details = message.get("details")
    value = details.get("ruleId") if isinstance(details, dict) else None
    try:
        return int(str(value))
    except ValueError:
        return None


def _blocked(line: bytes) -> BlockedRequest | None:
    try:
        entry = json.loads(line)["transaction"]
        messages = [m for m in entry.get("messages", []) if isinstance(m, dict)]
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
    ids = [_rule_id(message) for message in messages]
    if not DECIDING_RULES.intersection(rule for rule in ids if rule is not None):
        return None  # flagged, scored below the threshold, passed
    attacks = [(rule, message) for rule, message in zip(ids, messages, strict=True)
               if rule is not None and not any(low <= rule <= high for low, high in _BOOKKEEPING)]
    rule_id, message = attacks[0] if attacks else (ids[0], messages[0])
    try:
        at = datetime.strptime(str(entry.get("time_stamp")), "%a %b %d %H:%M:%S %Y").replace(tzinfo=UTC)
    except ValueError:
        at = datetime.now(UTC)
    request = entry.get("request") if isinstance(entry.get("request"), dict) else {}
    return BlockedRequest(at=at, client=str(entry.get("client_ip", "")), rule_id=rule_id,
                          uri=str(request.get("uri", "")), message=str(message.get("message", "")))


def traffic(layout: Layout, app_id: int, since: Offsets | None = None) -> Traffic:
    """What the app's server block saw since `since` (from its own access log and ModSecurity JSON audit log)."""
    since = since or Offsets()
    answered, access = _new_lines(layout.access_log(app_id), since.access)
    audited, audit = _new_lines(layout.audit_log(app_id), since.audit)
    requests = 0
    for line in answered:
        with contextlib.suppress(ValueError):
            if isinstance(json.loads(line), dict):
                requests += 1
    blocked = [found for found in (_blocked(line) for line in audited) if found is not None]
    return Traffic(requests=requests, blocked=blocked, offset=Offsets(access, audit))


