"""The reverse-DNS name of an allocated address (the allocation itself lives in catalog's ip_allocations)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from cloudlet.kit import clock
from cloudlet.kit.db import Base, UTCDateTime


class ReverseDns(Base):
    """The PTR name of one allocated address; removed with the allocation so a new owner starts clean."""

    __tablename__ = "ip_reverse_dns"

    # keyed by the address, not the allocation id, so the table needs nothing from the catalog's migration
    address: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(253))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now, onupdate=clock.now)
