"""Path and query parameters every surface declares the same way: ids and pages within their bounds."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query

from cloudlet.kit.ids import MAX_ID
from cloudlet.kit.pagination import MAX_OFFSET

# Out of bound, a path id fails validation, which every surface answers as 404 (surfaces/errors.py):
# a number no row can have names nothing, and reaching the database it would overflow the column (a 500).
PathId = Annotated[int, Path(ge=1, le=MAX_ID, description="A numeric id.")]
Offset = Annotated[int, Query(ge=0, le=MAX_OFFSET, description="How many items to skip.")]
