"""Identifiers: the one parser and bound of row ids, random secrets and their one-way digests."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Annotated

from pydantic import Field

MAX_ID = 2**31 - 1  # ids are 32-bit INTEGER columns in SQLite and PostgreSQL alike
NO_ID = 0  # an id no row has: what a number outside the bound becomes, so it is looked up and not found

# In a request body: an id, or any other number stored in an INTEGER column, refused (422) past the bound
# instead of overflowing the column on PostgreSQL (a 500; SQLite's 64-bit integers would take it).
Id = Annotated[int, Field(ge=1, le=MAX_ID)]
Int32 = Annotated[int, Field(ge=-MAX_ID - 1, le=MAX_ID)]


def in_range(value: int) -> bool:
    """Whether an integer can be a row id (1 to MAX_ID): a bigger one would overflow the column type."""
    return 0 < value <= MAX_ID


def is_number(raw: str) -> bool:
    """Whether a string is written in ASCII digits only ("²" and "٣" are digits to Python, not numbers here)."""
    return raw.isascii() and raw.isdigit()


def parse_id(raw: str) -> int | None:
    """The row id a string names: ASCII digits within the bound, else None (it names no row)."""
    if not is_number(raw) or len(raw) > len(str(MAX_ID)):
        return None
    value = int(raw)
    return value if in_range(value) else None


def id_or_key(ident: int | str) -> int | str:
    """An id where the reference is a number (NO_ID when out of bound), else the key (uuid, code) as given."""
    if isinstance(ident, int):
        return ident if in_range(ident) else NO_ID
    if is_number(ident):
        found = parse_id(ident)
        return NO_ID if found is None else found
    return ident


def new_secret(nbytes: int = 32) -> str:
    """A URL-safe random secret with nbytes of entropy (256 bits by default)."""
    return secrets.token_urlsafe(nbytes)


def digest(secret: str) -> str:
    """The SHA-256 hex digest under which a secret is stored."""
    return hashlib.sha256(secret.encode()).hexdigest()


def same_digest(secret: str, stored: str) -> bool:
    """Compare a presented secret with a stored digest in constant time."""
    return hmac.compare_digest(digest(secret), stored)
