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
        """Count one hit of key against every limit; refused if any limit is already spent."""
        refused: RateLimitItem | None = None
        for item in limits:
            if not self._limiter.hit(item, key):
                refused = item
                break
        now = time.time()
        tightest: tuple[int, int, int, str] | None = None
        for item in limits:
            reset, remaining = self._limiter.get_window_stats(item, key)
            candidate = (remaining, math.ceil(reset), item.amount, _window_name(item))
            if refused is item or (refused is None and (tightest is None or remaining < tightest[0])):
                tightest = candidate
                if refused is item:
                    break
        if tightest is None:
            raise ValueError("hit() needs at least one limit")
        remaining, reset_at, amount, window = tightest
        retry_after = max(1, reset_at - int(now)) if refused is not None else 0
        return Verdict(refused is None, amount, max(0, remaining), reset_at, retry_after, window)

    def clear(self, key: str, *limits: RateLimitItem) -> None:
        """Forget the hits of key (after a successful login, say)."""
        for item in limits:
            self._limiter.clear(item, key)

    def healthy(self) -> bool:
        """Whether the storage answers."""
        return bool(self.storage.check())
