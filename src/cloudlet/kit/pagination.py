"""Limit/offset pages, the way the references page their lists."""

from __future__ import annotations

from typing import Generic, TypeVar

from pydantic import BaseModel

T = TypeVar("T")


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
