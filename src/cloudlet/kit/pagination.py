"""Limit/offset pages, the way the references page their lists."""

from __future__ import annotations

from typing import Generic, TypeVar

from pydantic import BaseModel

from cloudlet.kit.ids import MAX_ID

T = TypeVar("T")

# past this an offset overflows SQLite's and PostgreSQL's integer types; no list is anywhere near it
MAX_OFFSET = MAX_ID


class Page(BaseModel, Generic[T]):
    """One page of items with the total that matched."""

    items: list[T]
    total: int
    limit: int
    offset: int

    @property
    def has_more(self) -> bool:
        """Whether items remain past this page."""
        return self.offset + len(self.items) < self.total
