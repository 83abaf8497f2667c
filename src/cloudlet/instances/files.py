"""Files of a running server, reached through its QEMU guest agent: list, read, write, make directories, move,
delete, download one file or a directory as a zip, upload.

Every path is taken relative to a root the caller names ("/" by default): `..` that would climb out of it is
refused, and so is a path whose symbolic links lead out of it (resolved inside the guest). Sizes are bounded
by settings (files_max_bytes, files_content_max_bytes) and a listing by files_list_max entries. A server that
is not running, or whose image has no guest agent, answers 409. A file written keeps its mode when the
file existed (0644 otherwise) and its owner (root otherwise).
"""

from __future__ import annotations

import base64
import io
import posixpath
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NamedTuple

from sqlalchemy.orm import Session

from cloudlet.config import Settings
from cloudlet.drivers.base import DriverError, GuestLocation, GuestPath, GuestPathKind, HypervisorDriver
from cloudlet.instances import guest_access
from cloudlet.instances.schemas import FileContent, FileEntry, FileListing
from cloudlet.kit.errors import Conflict, Invalid, NotFound, TooLarge
from cloudlet.nodes import service as nodes
from cloudlet.projects.schemas import Actor

MAX_PATH = 4096
NEW_FILE_MODE = 0o644


class Download(NamedTuple):
    """Bytes to send and the name to offer them under."""

    filename: str
    data: bytes


class _Guest(NamedTuple):
    driver: HypervisorDriver
    name: str
    root: str  # the caller's root as the caller wrote it, normalised
    real_root: str  # the same with the guest's symlinks resolved


@contextmanager
def _agent_errors() -> Iterator[None]:
    try:
        yield
    except DriverError as error:
        raise Conflict(f"The guest agent could not do it: {error}", code="GUEST_AGENT_FAILED") from None


def _absolute(field: str, value: str) -> str:
    if not value or len(value) > MAX_PATH or "\0" in value:
        raise Invalid(field, f"{field} must be a path of 1 to {MAX_PATH} characters without NUL.")
    return value


def _guest(session: Session, drivers: nodes.Drivers, actor: Actor, ident: int | str, root: str) -> _Guest:
    if not _absolute("root", root).startswith("/"):
        raise Invalid("root", "root must be an absolute path.")
    normal = posixpath.normpath(root)
    guest = guest_access.running_guest(session, drivers, actor, ident)
    with _agent_errors():
        located = guest.driver.locate_guest_path(guest.name, normal)
    if located.found is None or located.found.kind is not GuestPathKind.DIRECTORY:
        raise NotFound("directory", normal)
    return _Guest(guest.driver, guest.name, normal, located.real)


def _inside(path: str, root: str) -> bool:
    return root == "/" or path == root or path.startswith(root + "/")


def _path(guest: _Guest, path: str) -> str:
    """The caller's path under their root, `..` resolved; refused when it climbs out."""
    joined = posixpath.normpath(posixpath.join(guest.root, _absolute("path", path).lstrip("/")))
    if not _inside(joined, guest.root):
        raise Invalid("path", f"The path leaves {guest.root}.", code="PATH_OUTSIDE_ROOT")
    return joined


def _locate(guest: _Guest, path: str) -> GuestLocation:
    """Where path leads in the guest; refused when a symbolic link leads it out of the root."""
    with _agent_errors():
        located = guest.driver.locate_guest_path(guest.name, path)
    if not _inside(located.real, guest.real_root):
        raise Invalid("path", f"The path leads out of {guest.root} through a symbolic link.",
                      code="PATH_OUTSIDE_ROOT")
    return located


def _existing(guest: _Guest, path: str, kind: GuestPathKind | None = None) -> tuple[GuestLocation, GuestPath]:
    located = _locate(guest, path)
    if located.found is None:
        raise NotFound("file", path)
    if kind is not None and located.found.kind is not kind:
        raise Invalid("path", f"{path} is not a {kind.value}.", code=f"NOT_A_{kind.value.upper()}")
    return located, located.found


def _itself(guest: _Guest, path: str) -> tuple[str, GuestLocation]:
    """The path itself (its last part not followed) under its parent's real place, which must be in the root, and
    what is there."""
    if path == guest.root:
        raise Invalid("path", "The root itself cannot be moved or deleted.", code="PATH_IS_ROOT")
    parent = _locate(guest, posixpath.dirname(path))
    if parent.found is None:
        raise NotFound("directory", posixpath.dirname(path))
    real = posixpath.join(parent.real, posixpath.basename(path))
    with _agent_errors():
        return real, guest.driver.locate_guest_path(guest.name, real)


def list_files(session: Session, drivers: nodes.Drivers, settings: Settings, actor: Actor, ident: int | str,
               path: str, root: str = "/") -> FileListing:
    """A directory's entries, by name."""
    guest = _guest(session, drivers, actor, ident, root)
    place = _path(guest, path)
    located, _found = _existing(guest, place, GuestPathKind.DIRECTORY)
    with _agent_errors():
        entries, truncated = guest.driver.list_guest_dir(guest.name, located.real, settings.files_list_max)
    return FileListing(path=place, entries=[FileEntry.of(posixpath.join(place, e.name), e) for e in entries],
                       truncated=truncated)


def _read(guest: _Guest, place: str, limit: int) -> bytes:
    located, found = _existing(guest, place, GuestPathKind.FILE)
    if found.size > limit:
        raise TooLarge(f"{place} is {found.size} bytes; at most {limit} can be read this way.", code="FILE_TOO_LARGE")
    with _agent_errors():
        return guest.driver.read_guest_file(guest.name, located.real, limit)


def read_content(session: Session, drivers: nodes.Drivers, settings: Settings, actor: Actor, ident: int | str,
                 path: str, root: str = "/") -> FileContent:
    """A file's content (UTF-8 text as is, anything else in base64)."""
    guest = _guest(session, drivers, actor, ident, root)
    place = _path(guest, path)
    data = _read(guest, place, settings.files_content_max_bytes)
    try:
        return FileContent(path=place, content=data.decode("utf-8"), encoding="utf-8", size=len(data))
    except UnicodeDecodeError:
        return FileContent(path=place, content=base64.b64encode(data).decode(), encoding="base64", size=len(data))


def _write(guest: _Guest, place: str, data: bytes) -> FileEntry:
    located = _locate(guest, place)
    if located.found is not None and located.found.kind is not GuestPathKind.FILE:
        raise Conflict(f"{place} is a {located.found.kind.value}, not a file.", code="NOT_A_FILE")
    mode = located.found.mode if located.found is not None else NEW_FILE_MODE
    with _agent_errors():
        guest.driver.write_guest_file(guest.name, located.real, data, mode)
        written = guest.driver.locate_guest_path(guest.name, located.real).found
    if written is None:
        raise Conflict(f"{place} was written but is gone again.", code="GUEST_AGENT_FAILED")
    return FileEntry.of(place, written)


def write_content(session: Session, drivers: nodes.Drivers, settings: Settings, actor: Actor, ident: int | str,
                  path: str, data: bytes, root: str = "/") -> FileEntry:
    """Replace (or make) a file with data; its directories are made."""
    if len(data) > settings.files_content_max_bytes:
        raise TooLarge(f"The content is {len(data)} bytes; at most {settings.files_content_max_bytes} can be "
                       "written this way (upload larger files).", code="FILE_TOO_LARGE")
    guest = _guest(session, drivers, actor, ident, root)
    return _write(guest, _path(guest, path), data)


def download(session: Session, drivers: nodes.Drivers, settings: Settings, actor: Actor, ident: int | str,
             path: str, root: str = "/") -> Download:
    """One file's bytes."""
    guest = _guest(session, drivers, actor, ident, root)
    place = _path(guest, path)
    return Download(posixpath.basename(place), _read(guest, place, settings.files_max_bytes))


def upload(session: Session, drivers: nodes.Drivers, settings: Settings, actor: Actor, ident: int | str,
           directory: str, files: list[tuple[str, bytes]], root: str = "/") -> list[FileEntry]:
    """Put files into a directory (made if missing), each under its own base name."""
    if not files:
        raise Invalid("files", "Send at least one file.")
    total = sum(len(data) for _name, data in files)
    if total > settings.files_max_bytes:
        raise TooLarge(f"The upload is {total} bytes; at most {settings.files_max_bytes}.", code="FILE_TOO_LARGE")
    for name, _data in files:
        if not name or name in (".", "..") or "/" in name or "\0" in name or len(name) > 255:
            raise Invalid("files", f"{name!r} is not a file name (no '/', at most 255 characters).")
    guest = _guest(session, drivers, actor, ident, root)
    place = _path(guest, directory)
    _make_dir(guest, place)
    return [_write(guest, posixpath.join(place, name), data) for name, data in files]


def _make_dir(guest: _Guest, place: str) -> GuestLocation:
    """Make a directory (and parents) in the guest; what is there now."""
    located = _locate(guest, place)
    if located.found is not None and located.found.kind is not GuestPathKind.DIRECTORY:
        raise Conflict(f"{place} exists and is a {located.found.kind.value}.", code="PATH_EXISTS")
    if located.found is None:
        with _agent_errors():
            guest.driver.make_guest_dir(guest.name, located.real)
    return _locate(guest, place)


def make_dir(session: Session, drivers: nodes.Drivers, actor: Actor, ident: int | str, path: str,
             root: str = "/") -> FileEntry:
    """Make a directory and its parents (nothing changes when it exists)."""
    guest = _guest(session, drivers, actor, ident, root)
    place = _path(guest, path)
    found = _make_dir(guest, place).found
    if found is None:
        raise Conflict(f"{place} was made but is gone again.", code="GUEST_AGENT_FAILED")
    return FileEntry.of(place, found)


def move(session: Session, drivers: nodes.Drivers, actor: Actor, ident: int | str, source: str, target: str,
         root: str = "/") -> FileEntry:
    """Rename a file, link or directory; the target must not exist (its directory must)."""
    guest = _guest(session, drivers, actor, ident, root)
    old, new = _path(guest, source), _path(guest, target)
    old_real, old_at = _itself(guest, old)
    if old_at.entry is None:
        raise NotFound("file", old)
    new_real, new_at = _itself(guest, new)
    if new_at.entry is not None:
        raise Conflict(f"{new} already exists.", code="PATH_EXISTS")
    if new_real.startswith(old_real + "/"):
        raise Invalid("to", "A directory cannot move into itself.", code="MOVE_INTO_ITSELF")
    with _agent_errors():
        guest.driver.move_guest_path(guest.name, old_real, new_real)
    return FileEntry.of(new, old_at.entry._replace(name=posixpath.basename(new)))


def delete(session: Session, drivers: nodes.Drivers, actor: Actor, ident: int | str, path: str, *,
           recursive: bool = False, root: str = "/") -> None:
    """Delete a file or link, or a directory (one with anything in it only when recursive)."""
    guest = _guest(session, drivers, actor, ident, root)
    place = _path(guest, path)
    real, at = _itself(guest, place)
    if at.entry is None:
        raise NotFound("file", place)
    with _agent_errors():
        if at.entry.kind is GuestPathKind.DIRECTORY and not recursive \
                and guest.driver.list_guest_dir(guest.name, real, 1)[0]:
            raise Conflict(f"{place} is a directory that is not empty; ask for recursive deletion.",
                           code="DIRECTORY_NOT_EMPTY")
        guest.driver.remove_guest_path(guest.name, real)


def download_zip(session: Session, drivers: nodes.Drivers, settings: Settings, actor: Actor, ident: int | str,
                 path: str, root: str = "/") -> Download:
    """A directory and everything under it as a zip (symbolic links and special files left out)."""
    guest = _guest(session, drivers, actor, ident, root)
    place = _path(guest, path)
    located, _found = _existing(guest, place, GuestPathKind.DIRECTORY)
    buffer = io.BytesIO()
    taken, count = 0, 0
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive, _agent_errors():
        pending = [("", located.real)]
        while pending:
            prefix, folder = pending.pop()
            entries, truncated = guest.driver.list_guest_dir(guest.name, folder, settings.files_zip_max_files)
            count += len(entries)
            if truncated or count > settings.files_zip_max_files:
                raise TooLarge(f"{place} holds more than {settings.files_zip_max_files} entries.",
                               code="DIRECTORY_TOO_LARGE")
            for entry in entries:
                inner = f"{prefix}{entry.name}"
                if entry.kind is GuestPathKind.DIRECTORY:
                    archive.writestr(zipfile.ZipInfo(inner + "/", entry.modified.timetuple()[:6]), b"")
                    pending.append((inner + "/", posixpath.join(folder, entry.name)))
                elif entry.kind is GuestPathKind.FILE:
                    taken += entry.size
                    if taken > settings.files_max_bytes:
                        raise TooLarge(f"{place} holds more than {settings.files_max_bytes} bytes.",
                                       code="DIRECTORY_TOO_LARGE")
                    data = guest.driver.read_guest_file(guest.name, posixpath.join(folder, entry.name),
                                                        settings.files_max_bytes)
                    info = zipfile.ZipInfo(inner, entry.modified.timetuple()[:6])
                    info.external_attr = (0o100000 | entry.mode) << 16
                    archive.writestr(info, data, zipfile.ZIP_DEFLATED)
    name = posixpath.basename(place) or "root"
    return Download(f"{name}.zip", buffer.getvalue())
