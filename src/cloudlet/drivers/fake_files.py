"""The file system of a fake guest: directories and regular files in memory (no symlinks), with the semantics the
libvirt driver gets from the guest's agent and coreutils."""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, field
from datetime import UTC, datetime

from cloudlet.drivers.base import GuestFailed, GuestLocation, GuestPath, GuestPathKind


def _absolute(path: str) -> str:
    if not path.startswith("/") or "\0" in path:
        raise GuestFailed(f"{path!r} is not an absolute path")
    return posixpath.normpath(path).replace("//", "/")


@dataclass
class FakeFiles:
    """Directories and files by absolute path; "/" always exists."""

    dirs: dict[str, datetime] = field(default_factory=lambda: {"/": datetime.now(UTC)})
    files: dict[str, tuple[bytes, int, datetime]] = field(default_factory=dict)

    def _entry(self, path: str) -> GuestPath | None:
        name = posixpath.basename(path) or "/"
        if path in self.dirs:
            return GuestPath(name, GuestPathKind.DIRECTORY, 4096, 0o755, self.dirs[path])
        if path in self.files:
            data, mode, modified = self.files[path]
            return GuestPath(name, GuestPathKind.FILE, len(data), mode, modified)
        return None

    def locate(self, path: str) -> GuestLocation:
        """Where the path leads and what is there."""
        real = _absolute(path)
        found = self._entry(real)
        return GuestLocation(real, found, found)

    def listing(self, path: str, limit: int) -> tuple[list[GuestPath], bool]:
        """A directory's entries by name."""
        folder = _absolute(path)
        if folder not in self.dirs:
            raise GuestFailed(f"{folder} is not a directory")
        children = sorted(p for p in (*self.dirs, *self.files) if p != "/" and posixpath.dirname(p) == folder)
        found = [entry for entry in map(self._entry, children[:limit]) if entry is not None]
        return found, len(children) > limit

    def read(self, path: str, limit: int) -> bytes:
        """A regular file's content."""
        found = self.files.get(_absolute(path))
        if found is None:
            raise GuestFailed(f"{path} is not a regular file")
        if len(found[0]) > limit:
            raise GuestFailed(f"{path} is larger than {limit} bytes")
        return found[0]

    def _parent_dirs(self, path: str) -> None:
        parent = posixpath.dirname(path)
        while parent not in self.dirs:
            if parent in self.files:
                raise GuestFailed(f"{parent} is not a directory")
            self.dirs[parent] = datetime.now(UTC)
            parent = posixpath.dirname(parent)

    def write(self, path: str, data: bytes, mode: int) -> None:
        """Replace a file, making its directories."""
        target = _absolute(path)
        if target in self.dirs:
            raise GuestFailed(f"{target} is a directory")
        self._parent_dirs(target)
        self.files[target] = (data, mode, datetime.now(UTC))

    def mkdir(self, path: str) -> None:
        """Make a directory and its parents."""
        target = _absolute(path)
        if target in self.files:
            raise GuestFailed(f"{target} exists and is not a directory")
        self._parent_dirs(target)
        self.dirs.setdefault(target, datetime.now(UTC))

    def _under(self, path: str) -> list[str]:
        return [p for p in (*self.dirs, *self.files) if p == path or p.startswith(path.rstrip("/") + "/")]

    def move(self, source: str, target: str) -> None:
        """Rename a file or a directory with what it holds."""
        old, new = _absolute(source), _absolute(target)
        if self._entry(old) is None:
            raise GuestFailed(f"{old} does not exist")
        if old == "/" or new.startswith(old.rstrip("/") + "/"):
            raise GuestFailed(f"cannot move {old} into itself")
        if new in self.files or (new in self.dirs and len(self._under(new)) > 1):
            raise GuestFailed(f"{new} exists")
        self._parent_dirs(new)
        for path in self._under(old):
            moved = new + path[len(old):]
            if path in self.dirs:
                self.dirs[moved] = self.dirs.pop(path)
            else:
                self.files[moved] = self.files.pop(path)

    def remove(self, path: str) -> None:
        """Remove a file or a directory with what it holds."""
        target = _absolute(path)
        if target == "/":
            raise GuestFailed("cannot remove /")
        for found in self._under(target):
            self.dirs.pop(found, None)
            self.files.pop(found, None)
