"""A guest's CPU use from two samples of its counters, without making every reader wait.

The first reading of a guest in this process takes two samples CPU_SAMPLE_SECONDS apart; later readings
compare with the sample the last one kept, so polling a server costs one read of its counters. A kept
sample that is too old (the rate would be an average over minutes) or from an earlier run of the guest
(its counter went back) is sampled afresh; readings closer together than MIN_GAP_SECONDS repeat the last
figure, since a rate over a few milliseconds says nothing.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import NamedTuple

from cloudlet.drivers.base import GuestStats

CPU_SAMPLE_SECONDS = 0.2
MIN_GAP_SECONDS = 0.05
MAX_AGE_SECONDS = 120.0
KEPT_GUESTS = 4096


class _Kept(NamedTuple):
    sample: GuestStats
    percent: float


def percent_between(first: GuestStats, second: GuestStats) -> float:
    """CPU use between two samples, as a share of all the guest's vCPUs (0-100, one decimal)."""
    elapsed_ns = max(1.0, (second.sampled_at - first.sampled_at).total_seconds() * 1e9)
    cpu = 100.0 * (second.cpu_time_ns - first.cpu_time_ns) / (elapsed_ns * max(1, second.vcpus))
    return round(min(100.0, max(0.0, cpu)), 1)


class CpuMeter:
    """The last sample of each guest read in this process (the least recently read are forgotten first)."""

    def __init__(self, capacity: int = KEPT_GUESTS) -> None:
        self._kept: OrderedDict[str, _Kept] = OrderedDict()
        self._capacity = capacity
        self._lock = threading.Lock()

    def percent(self, key: str, sample: GuestStats, resample: Callable[[], GuestStats]) -> float:
        """CPU use of the guest `key` up to `sample`; `resample` reads its counters again when needed."""
        with self._lock:
            kept = self._kept.get(key)
        if kept is not None:
            gap = (sample.sampled_at - kept.sample.sampled_at).total_seconds()
            if 0 <= gap < MIN_GAP_SECONDS:
                return kept.percent
            usable = gap <= MAX_AGE_SECONDS and sample.cpu_time_ns >= kept.sample.cpu_time_ns
            if usable:
                return self._keep(key, sample, percent_between(kept.sample, sample))
        time.sleep(CPU_SAMPLE_SECONDS)
        second = resample()
        return self._keep(key, second, percent_between(sample, second))

    def forget(self, key: str) -> None:
        """Drop what is kept of a guest (it was stopped, say)."""
        with self._lock:
            self._kept.pop(key, None)

    def _keep(self, key: str, sample: GuestStats, percent: float) -> float:
        with self._lock:
            self._kept[key] = _Kept(sample, percent)
            self._kept.move_to_end(key)
            while len(self._kept) > self._capacity:
                self._kept.popitem(last=False)
        return percent
