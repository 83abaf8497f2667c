"""The CPU meter behind vf_remote_state: one read of the counters per poll once a guest has been seen."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from cloudlet.drivers.base import GuestStats
from cloudlet.instances.cpu_meter import CpuMeter, percent_between

T0 = datetime(2026, 12, 5, tzinfo=UTC)


def stats(seconds: float, cpu_seconds: float, vcpus: int = 2) -> GuestStats:
    return GuestStats(sampled_at=T0 + timedelta(seconds=seconds), cpu_time_ns=int(cpu_seconds * 1e9), vcpus=vcpus,
                      memory_mib=1024, memory_used_mib=None, disk_read_bytes=0, disk_write_bytes=0,
                      disk_read_requests=0, disk_write_requests=0, disk_capacity_bytes=0, disk_allocation_bytes=0,
                      net_rx_bytes=0, net_tx_bytes=0, net_rx_packets=0, net_tx_packets=0)


class Resampler:
    """Counts how often the meter asks for a second sample, and gives the next one."""

    def __init__(self, *samples: GuestStats) -> None:
        self.samples = list(samples)
        self.calls = 0

    def __call__(self) -> GuestStats:
        self.calls += 1
        return self.samples.pop(0)


def test_the_share_is_of_all_vcpus_and_bounded() -> None:
    assert percent_between(stats(0, 0), stats(10, 5)) == 25.0  # 5 s of CPU in 10 s over 2 vCPUs
    assert percent_between(stats(0, 0), stats(1, 9)) == 100.0
    assert percent_between(stats(0, 5), stats(1, 0)) == 0.0


def test_a_guest_is_sampled_twice_once_then_compared_with_what_was_kept() -> None:
    meter = CpuMeter()
    first = Resampler(stats(0.2, 0.1))
    assert meter.percent("g", stats(0, 0), first) == 25.0 and first.calls == 1
    later = Resampler()
    assert meter.percent("g", stats(10.2, 2.1), later) == 10.0 and later.calls == 0
    assert meter.percent("g", stats(10.21, 9.0), later) == 10.0  # too close to say anything new


def test_an_old_sample_or_a_restarted_guest_is_sampled_afresh() -> None:
    meter = CpuMeter()
    meter.percent("g", stats(0, 0), Resampler(stats(0.2, 0)))
    stale = Resampler(stats(500.2, 100.4))
    assert meter.percent("g", stats(500, 100), stale) == 100.0 and stale.calls == 1
    restarted = Resampler(stats(600.2, 0.2))
    assert meter.percent("g", stats(600, 0.1), restarted) == 25.0 and restarted.calls == 1
    meter.forget("g")
    forgotten = Resampler(stats(601.2, 0.2))
    meter.percent("g", stats(601, 0.2), forgotten)
    assert forgotten.calls == 1


def test_the_least_recently_read_guests_are_forgotten_first() -> None:
    meter = CpuMeter(capacity=2)
    for key in ("a", "b", "c"):
        meter.percent(key, stats(0, 0), Resampler(stats(0.2, 0)))
    again = Resampler(stats(1.2, 0))
    meter.percent("a", stats(1, 0), again)
    assert again.calls == 1  # "a" was dropped to keep two
    kept = Resampler()
    meter.percent("c", stats(1, 0), kept)
    assert kept.calls == 0
