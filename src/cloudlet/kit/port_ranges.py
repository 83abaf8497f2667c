"""The port or port range a firewall rule matches, as a request gives it: a first port and an optional last."""

from __future__ import annotations

from cloudlet.kit.errors import Invalid


def checked_range(start: int | None, end: int | None, *, ported: bool, field: str,
                  end_field: str) -> tuple[int | None, int | None]:
    """(first, last) of the range, (None, None) for any port; Invalid (naming the request's fields) for a last
    port without a first, ports on a protocol without them (ported False), or a range that runs backwards."""
    if start is None:
        if end is not None:
            raise Invalid(end_field, f"{end_field} needs {field}.", code="INVALID_PORT")
        return None, None
    if not ported:
        raise Invalid(field, "Ports are matched for tcp and udp only.", code="INVALID_PORT")
    if end is not None and end < start:
        raise Invalid(end_field, f"{end_field} must not be below {field}.", code="INVALID_PORT")
    return start, end if end is not None else start
