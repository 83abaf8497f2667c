"""The agent's tool kit, run inside the customer's server through its guest agent (never on the node): `shell`
(a command, with a timeout and an output cap), `read_file`, `edit_file` (replace one exact piece of text; the
transcript shows the diff) and `tail_log`.

Read-only by default, as careful coding agents are: a call that would change the server (`edit_file`, or a
`shell` command that is not one of a fixed list of reading programs and subcommands, free of shell syntax that
could chain, redirect or substitute) waits for the customer's approval (needs_approval; agent/service.py keeps
it pending) unless the customer allowed changes for the request.
"""

from __future__ import annotations

import difflib
import json
import shlex
import time
from dataclasses import dataclass
from typing import Any

from cloudlet.config import Settings
from cloudlet.drivers.base import DriverError
from cloudlet.instances.guest_access import RunningGuest

READ_LIMIT = 1024 * 1024  # the largest file read_file and edit_file take
TAIL_LINES = 50
TAIL_MAX_LINES = 2000
_SHELL_SYNTAX = set(";&|<>`$()\n\\{}*?[]!")
# programs that only read, and for some the subcommands that only read
_READERS: dict[str, frozenset[str] | None] = {
    **dict.fromkeys(("hostname", "uptime", "uname", "whoami", "id", "date", "df", "free", "ps", "ls", "cat",
                     "head", "tail", "grep", "journalctl", "ss", "lsblk", "du", "stat", "wc", "pwd", "echo",
                     "nproc", "lscpu", "top", "pgrep", "getent", "dig", "host", "ping"), None),
    "systemctl": frozenset({"status", "is-active", "is-enabled", "is-failed", "list-units", "show", "cat"}),
    "ip": frozenset({"a", "addr", "address", "r", "route", "link", "-br", "-4", "-6"}),
    "nginx": frozenset({"-t", "-T", "-v", "-V"}),
    "dpkg": frozenset({"-l", "-s", "-L"}),
    "apt": frozenset({"list", "show", "policy"}),
}
_WRITING_WORDS = {"add", "del", "delete", "set", "flush", "change", "replace", "-w", "--rotate", "--vacuum-size",
                  "--vacuum-time", "--vacuum-files", "--flush", "--sync", "--relinquish-var", "-f"}

DEFINITIONS: list[dict[str, Any]] = [
    {"type": "function", "function": {
        "name": "shell", "description": "Run a shell command as root inside the server (sh -c); its exit status and "
        "output (stdout and stderr) come back, cut past a limit. Commands that change the server need the "
        "customer's leave.",
        "parameters": {"type": "object", "properties": {"command": {"type": "string"}}, "required": ["command"]}}},
    {"type": "function", "function": {
        "name": "read_file", "description": "Read a text file inside the server.",
        "parameters": {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]}}},
    {"type": "function", "function": {
        "name": "edit_file", "description": "Replace one exact piece of text of a file inside the server (it must "
        "occur exactly once). Needs the customer's leave to change the server.",
        "parameters": {"type": "object", "properties": {"path": {"type": "string"}, "old_text": {"type": "string"},
                                                        "new_text": {"type": "string"}},
                       "required": ["path", "old_text", "new_text"]}}},
    {"type": "function", "function": {
        "name": "tail_log", "description": "The last lines of a log file inside the server.",
        "parameters": {"type": "object", "properties": {"path": {"type": "string"},
                                                        "lines": {"type": "integer", "minimum": 1,
                                                                  "maximum": TAIL_MAX_LINES}},
                       "required": ["path"]}}},
]
NAMES = frozenset(definition["function"]["name"] for definition in DEFINITIONS)


@dataclass(frozen=True)
class ToolResult:
    """What a tool call did, as the transcript keeps it and the model reads it."""

    output: str
    exit_status: int | None = None
    truncated: bool = False
    seconds: float = 0.0
    error: str = ""  # the call was refused or could not run: why (also in output, for the model)


def read_only(command: str) -> bool:
    """Whether a shell command only reads: one program of the list (with a reading subcommand where it has
    some), and no shell syntax."""
    if not command.strip() or any(char in _SHELL_SYNTAX for char in command):
        return False
    try:
        words = shlex.split(command)
    except ValueError:
        return False
    if not words or words[0] not in _READERS or _WRITING_WORDS & {word.split("=", 1)[0] for word in words[1:]}:
        return False
    allowed = _READERS[words[0]]
    return allowed is None or (len(words) > 1 and words[1] in allowed)


def needs_approval(name: str, arguments_text: str) -> str | None:
    """Why this call would change the server, so that it waits for the customer's approval; None if it reads
    (or is out of shape: run() refuses it then)."""
    if name == "edit_file":
        return "it edits a file"
    if name != "shell":
        return None
    try:
        command = json.loads(arguments_text or "{}").get("command")
    except (ValueError, AttributeError):
        return None
    if isinstance(command, str) and command.strip() and not read_only(command):
        return "this command may change the server"
    return None


def _refused(why: str) -> ToolResult:
    return ToolResult(output=f"refused: {why}", error=why)


def _text(data: bytes, cap: int) -> tuple[str, bool]:
    text = data[:cap].decode(errors="replace")
    if len(data) > cap:
        return f"{text}\n[output cut at {cap} bytes]", True
    return text, False


def _path(arguments: dict[str, Any]) -> str:
    path = arguments.get("path")
    if not isinstance(path, str) or not path.startswith("/") or "\0" in path or len(path) > 4096:
        raise ValueError("path must be an absolute path")
    return path


def run(guest: RunningGuest, settings: Settings, name: str, arguments_text: str) -> ToolResult:
    """Run one tool call of the model inside the guest (its approval, if it needed one, is the caller's); a call
    out of shape is a result saying so."""
    try:
        arguments = json.loads(arguments_text or "{}")
        if not isinstance(arguments, dict):
            raise ValueError("the arguments must be a JSON object")
    except ValueError as bad:
        return _refused(f"the arguments are not a JSON object ({bad})")
    began = time.monotonic()
    try:
        result = _run(guest, settings, name, arguments)
    except ValueError as bad:
        return _refused(str(bad))
    except DriverError as failed:
        why = f"it could not run inside the server: {failed}"
        return ToolResult(output=f"error: {why}", seconds=time.monotonic() - began, error=why)
    return result if result.seconds else ToolResult(result.output, result.exit_status, result.truncated,
                                                    time.monotonic() - began, result.error)


def _run(guest: RunningGuest, settings: Settings, name: str, arguments: dict[str, Any]) -> ToolResult:
    cap = settings.agent_output_cap_bytes
    if name == "shell":
        command = arguments.get("command")
        if not isinstance(command, str) or not command.strip() or len(command) > 16384:
            raise ValueError("command must be a non-empty string of at most 16 KiB")
        return _shell(guest, settings, command)
    if name == "read_file":
        text, cut = _text(guest.driver.read_guest_file(guest.name, _path(arguments), READ_LIMIT), cap)
        return ToolResult(text, truncated=cut)
    if name == "tail_log":
        lines = arguments.get("lines", TAIL_LINES)
        if not isinstance(lines, int) or not 1 <= lines <= TAIL_MAX_LINES:
            raise ValueError(f"lines must be a whole number from 1 to {TAIL_MAX_LINES}")
        return _shell(guest, settings, f"tail -n {lines} {shlex.quote(_path(arguments))}")
    if name == "edit_file":
        return _edit(guest, arguments, cap=cap)
    raise ValueError(f"there is no tool {name!r}: the tools are {', '.join(sorted(NAMES))}")


def _shell(guest: RunningGuest, settings: Settings, command: str) -> ToolResult:
    cap, timeout = settings.agent_output_cap_bytes, settings.agent_tool_timeout_seconds
    ran = guest.driver.run_in_guest(guest.name, command, timeout, cap)
    output = ran.output.decode(errors="replace")
    if ran.truncated:
        output += f"\n[output cut at {cap} bytes]"
    if ran.timed_out:
        output += f"\n[killed after {timeout:g} s]"
    return ToolResult(output, ran.exit_status, ran.truncated, ran.seconds)


def _edit(guest: RunningGuest, arguments: dict[str, Any], *, cap: int) -> ToolResult:
    path = _path(arguments)
    old, new = arguments.get("old_text"), arguments.get("new_text")
    if not isinstance(old, str) or not old or not isinstance(new, str):
        raise ValueError("old_text (not empty) and new_text must be strings")
    located = guest.driver.locate_guest_path(guest.name, path)
    before = guest.driver.read_guest_file(guest.name, path, READ_LIMIT).decode()
    found = before.count(old)
    if found != 1:
        raise ValueError(f"old_text occurs {found} times in {path}: it must occur exactly once")
    after = before.replace(old, new, 1)
    mode = located.found.mode if located.found is not None else 0o644
    guest.driver.write_guest_file(guest.name, path, after.encode(), mode)
    diff = "".join(difflib.unified_diff(before.splitlines(keepends=True), after.splitlines(keepends=True),
                                        fromfile=path, tofile=path))
    text, cut = _text(diff.encode(), cap)
    return ToolResult(text, exit_status=0, truncated=cut)
