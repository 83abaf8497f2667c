"""FreshCache: what a process read in the last second, dropped as soon as the process commits a write.

Why: the hottest reads (a token's facts on every request, GET /api/me) cost a query and a thread hop
each, for answers that rarely change. An entry lives at most `seconds`, so a change committed by any
other process (a replica, the CLI) is seen everywhere within that time; every write this process
commits empties the cache at once (`forget_all`, hooked to the database's commits by the runtime), so a
change made here is seen by the very next request.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


@dataclass(frozen=True, slots=True)
class Ticket:
    """When a read began: the cache's generation and time.monotonic() then."""

    generation: int
    at: float


@dataclass(frozen=True, slots=True)
class _Entry(Generic[V]):
    value: V
    read: Ticket


class FreshCache(Generic[K, V]):
    """Values read at most `seconds` ago and since this process's last committed write.

    A reader takes a ticket before its query and hands it to `put`: a value read while a write was being
    committed is then not kept, since it may predate that write; and a value lives `seconds` from when its
    read began, however long the read took.
    """

    SECONDS = 1.0
    MAX_ENTRIES = 10_000

    def __init__(self, seconds: float = SECONDS) -> None:
        self.seconds = seconds
        self.generation = 0
        self._entries: dict[K, _Entry[V]] = {}
        self._lock = threading.Lock()

    def get(self, key: K) -> V | None:
        """The value for key if it is fresh and no write was committed since it was read."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry.read.generation != self.generation or time.monotonic() - entry.read.at >= self.seconds:
            self._entries.pop(key, None)
            return None
        return entry.value

    def ticket(self) -> Ticket:
        """Take before reading what will be put."""
        return Ticket(self.generation, time.monotonic())

    def put(self, key: K, value: V, read: Ticket) -> None:
        """Keep a value whose read began with `read` (not kept when a write was committed meanwhile)."""
        with self._lock:
            if read.generation != self.generation:
                return
            if len(self._entries) >= self.MAX_ENTRIES:
                self._entries.clear()  # a flood of distinct keys: start again rather than grow
            self._entries[key] = _Entry(value, read)

    def forget_all(self, *_: object) -> None:
        """Drop every entry (a write was committed in this process: it may have changed any of them)."""
        with self._lock:
            self.generation += 1
            self._entries.clear()
