"""The rate limiter's verdicts: which window the headers describe, and that refusals cost nothing."""

from __future__ import annotations

import threading
import time

import pytest

from cloudlet.kit.ratelimit import RateLimiter, per_hour, per_minute


def test_headers_describe_the_window_with_fewest_requests_left() -> None:
    limiter = RateLimiter()
    verdict = limiter.hit("k", per_minute(3), per_hour(100))
    assert (verdict.allowed, verdict.limit, verdict.remaining, verdict.window) == (True, 3, 2, "minute")
    assert time.time() < verdict.reset_at <= time.time() + 61
    assert verdict.retry_after == 0 and "Retry-After" not in verdict.headers()
    verdict = RateLimiter().hit("k", per_minute(10), per_hour(2))
    assert (verdict.limit, verdict.remaining, verdict.window) == (2, 1, "hour")
    assert time.time() + 3500 < verdict.reset_at <= time.time() + 3601


def test_a_refusal_says_how_long_to_wait_and_is_not_counted() -> None:
    limiter = RateLimiter()
    for _ in range(3):
        assert limiter.hit("k", per_minute(3), per_hour(5)).allowed
    for _ in range(4):
        refused = limiter.hit("k", per_minute(3), per_hour(5))
        assert not refused.allowed and refused.window == "minute" and refused.remaining == 0
        assert 1 <= refused.retry_after <= 60  # never more than the window itself
        assert refused.headers()["Retry-After"] == str(refused.retry_after)
    # the four refusals did not spend the hour's allowance: 2 of 5 are left
    stats = limiter._limiter.get_window_stats(per_hour(5), "k")
    assert stats.remaining == 2


def test_when_both_windows_are_spent_the_later_reopening_is_reported() -> None:
    limiter = RateLimiter()
    assert limiter.hit("k", per_minute(1), per_hour(1)).allowed
    refused = limiter.hit("k", per_minute(1), per_hour(1))
    assert refused.window == "hour" and refused.retry_after > 60


def test_a_refusal_by_the_longer_window_does_not_spend_the_shorter_one() -> None:
    limiter = RateLimiter()
    assert limiter.hit("k", per_minute(3), per_hour(1)).allowed
    assert not limiter.hit("k", per_minute(3), per_hour(1)).allowed
    assert not limiter.hit("k", per_minute(3), per_hour(1)).allowed
    assert limiter._limiter.get_window_stats(per_minute(3), "k").remaining == 2


def test_counting_in_memory_starts_no_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    # limits' MemoryStorage started a Timer thread every few hits under load; ours counts in place
    limiter = RateLimiter()
    started: list[threading.Thread] = []
    real_start = threading.Thread.start

    def counting_start(thread: threading.Thread) -> None:
        started.append(thread)
        real_start(thread)

    monkeypatch.setattr(threading.Thread, "start", counting_start)
    deadline = time.monotonic() + 0.1  # longer than MemoryStorage's 10 ms timer
    hits = 0
    while time.monotonic() < deadline:
        assert limiter.hit(f"k{hits % 7}", per_minute(10_000), per_hour(100_000)).allowed
        hits += 1
    assert started == [] and hits > 10
    assert limiter.hit("k0", per_minute(10_000), per_hour(100_000)).remaining < 10_000
