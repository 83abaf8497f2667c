"""A pool refresh waits out another volume job in the pool instead of failing the call that needed it."""

from __future__ import annotations

import libvirt
import pytest

from cloudlet.drivers.base import RetryLater
from cloudlet.drivers.libvirt import storage

BUSY = "internal error: pool 'cloudlet' has asynchronous jobs running."


class Pool:
    """A pool whose refresh libvirt refuses `busy_for` times first (a job of another guest's runs)."""

    def __init__(self, busy_for: int) -> None:
        self.busy_for = busy_for
        self.calls = 0

    def refresh(self, flags: int) -> int:
        self.calls += 1
        if self.calls <= self.busy_for:
            raise libvirt.libvirtError(BUSY)
        return 0


def test_a_refresh_is_tried_again_until_the_other_job_ends() -> None:
    pool = Pool(busy_for=3)
    storage.refresh(pool)  # type: ignore[arg-type]
    assert pool.calls == 4


def test_a_pool_busy_for_longer_than_the_bound_is_retry_later(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(storage, "REFRESH_SECONDS", 0.3)
    pool = Pool(busy_for=1_000_000)
    with pytest.raises(RetryLater, match="asynchronous jobs running"):
        storage.refresh(pool)  # type: ignore[arg-type]
    assert 1 < pool.calls < 1_000_000
