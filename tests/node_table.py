"""The node's firewall table is one per kernel, and the tests that write it on this machine run in parallel
processes: each holds this lock while it writes and reads the table, so none undoes another's table midway."""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

LOCK = Path("/run/cloudlet-test-node-firewall.lock")


@contextmanager
def held() -> Iterator[None]:
    """Hold the node's firewall table for the block."""
    with LOCK.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
