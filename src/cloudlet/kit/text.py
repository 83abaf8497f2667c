"""Names people give things: one printable line, since they end up in email subjects and bodies."""

from __future__ import annotations

import unicodedata
from typing import Annotated

from pydantic import AfterValidator

# Line breaks, control and surrogate characters, and the bidirectional overrides and isolates that
# make a name read differently from what it is (a subject line that "says" something else).
_REFUSED_CATEGORIES = frozenset({"Cc", "Cs", "Co", "Zl", "Zp"})
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def one_line(value: str) -> str:
    """The value trimmed, refused (ValueError) if it holds a line break or another control character."""
    for char in value:
        if unicodedata.category(char) in _REFUSED_CATEGORIES or char in _BIDI_CONTROLS:
            raise ValueError(f"must be one line of printable text (it contains U+{ord(char):04X})")
    return value.strip()


OneLine = Annotated[str, AfterValidator(one_line)]  # pydantic field type: one trimmed printable line
