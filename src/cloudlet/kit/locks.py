"""Transaction-long locks on a name, for checks that count rows before adding one (at most N of something).

On PostgreSQL a transaction-level advisory lock on the name's 64-bit digest: a second transaction asking
for the same name waits until the first commits or rolls back, then sees its rows. On SQLite a writing
transaction already holds the database's one write lock from its start (BEGIN IMMEDIATE, see db.py), so
nothing more is needed.
"""

from __future__ import annotations

import hashlib

from sqlalchemy import func, select
from sqlalchemy.orm import Session


def _key(name: str) -> int:
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "big", signed=True)


def hold(session: Session, name: str) -> None:
    """Hold the lock called name until the session's transaction ends."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(select(func.pg_advisory_xact_lock(_key(name))))
