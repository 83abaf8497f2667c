"""Rate limits on the `limits` library: memory storage by default, Redis when configured."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from limits import RateLimitItem, RateLimitItemPerHour, RateLimitItemPerMinute, parse
from limits.storage import MemoryStorage, RedisStorage, Storage
from limits.strategies import FixedWindowRateLimiter


@dataclass(frozen=True)
class Verdict:
    """The outcome of one hit: allowed or not, and what the X-RateLimit-* headers should say."""

    allowed: bool
    limit: int
    remaining: int
    reset_at: int  # epoch seconds when the tightest window resets
    retry_after: int  # seconds; 0 when allowed
    window: str  # "minute", "hour", ... of the tightest (or the exceeded) limit

    def headers(self) -> dict[str, str]:
        """The rate-limit headers for this verdict."""
        result = {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(self.reset_at),
        }
        if not self.allowed:
            result["Retry-After"] = str(self.retry_after)
        return result


def per_minute(n: int) -> RateLimitItem:
    """A limit of n requests a minute."""
    return RateLimitItemPerMinute(n)


def per_hour(n: int) -> RateLimitItem:
    """A limit of n requests an hour."""
    return RateLimitItemPerHour(n)


def rule(text: str) -> RateLimitItem:
    """Parse a limit written like "5/minute"."""
    return parse(text)


def _window_name(item: RateLimitItem) -> str:
    return str(item.GRANULARITY.name)


class RateLimiter:
    """Counts hits against several limits at once and reports the tightest one."""

    def __init__(self, redis_url: str | None = None, *, prefix: str = "cloudlet") -> None:
        storage: Storage = RedisStorage(redis_url, key_prefix=prefix) if redis_url else MemoryStorage()
        self.storage = storage
        self._limiter = FixedWindowRateLimiter(storage)

    def hit(self, key: str, *limits: RateLimitItem) -> Verdict:
        """Count one hit of key against every limit; refused (and not counted) if any limit is spent.

        The headers describe the tightest window: the one with the fewest requests left (on a tie,
        the one that resets last), or, when refused, the exhausted window that reopens last - so a
        client that waits Retry-After seconds is not refused again by a longer window.
        """
        if not limits:
            raise ValueError("hit() needs at least one limit")
        exhausted = [item for item in limits if not self._limiter.test(item, key)]
        if not exhausted:
            # Another replica may spend the last slot between test() and hit().
            exhausted = [item for item in limits if not self._limiter.hit(item, key)]
        now = time.time()
        stats = [(item, self._limiter.get_window_stats(item, key)) for item in limits]
        if exhausted:
            item, window = max(((i, w) for i, w in stats if any(i is e for e in exhausted)),
                               key=lambda pair: pair[1].reset_time)
            retry_after = max(1, math.ceil(window.reset_time - now))
        else:
            item, window = min(stats, key=lambda pair: (pair[1].remaining, -pair[1].reset_time))
            retry_after = 0
        return Verdict(not exhausted, item.amount, max(0, window.remaining), math.ceil(window.reset_time),
                       retry_after, _window_name(item))

    def clear(self, key: str, *limits: RateLimitItem) -> None:
        """Forget the hits of key (after a successful login, say)."""
        for item in limits:
            self._limiter.clear(item, key)

    def healthy(self) -> bool:
        """Whether the storage answers."""
        return bool(self.storage.check())
