"""Rate limits on the `limits` library: memory storage by default, Redis when configured."""

from __future__ import annotations

import functools
import math
import threading
import time
from dataclasses import dataclass

from limits import RateLimitItem, RateLimitItemPerHour, RateLimitItemPerMinute, parse
from limits.storage import MemoryStorage, RedisStorage, Storage
from limits.strategies import FixedWindowRateLimiter
from limits.util import WindowStats


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


# Every request counts against its token's limits: the few distinct ones are made once, not per request.
@functools.lru_cache(maxsize=1024)
def per_minute(n: int) -> RateLimitItem:
    """A limit of n requests a minute."""
    return RateLimitItemPerMinute(n)


@functools.lru_cache(maxsize=1024)
def per_hour(n: int) -> RateLimitItem:
    """A limit of n requests an hour."""
    return RateLimitItemPerHour(n)


def rule(text: str) -> RateLimitItem:
    """Parse a limit written like "5/minute"."""
    return parse(text)


class LocalStorage(MemoryStorage):
    """limits' memory storage without its expiry thread.

    Why: MemoryStorage starts a new 10 ms `threading.Timer` on a hit whenever the last one has
    finished, so under load it started a thread every few requests (a third of a GET's cost).
    Here expired counters are dropped as they are read, as MemoryStorage also does, and the rest in
    one sweep a minute, on whichever hit comes first.
    """

    SWEEP_SECONDS = 60.0

    def __init__(self) -> None:
        super().__init__()
        self.timer.cancel()  # the one timer the parent starts; none is started again
        self.lock = threading.Lock()  # RateLimiter counts all of a request's windows under it
        self._next_sweep = time.monotonic() + self.SWEEP_SECONDS

    def _MemoryStorage__schedule_expiry(self) -> None:  # noqa: N802  # replaces the parent's private hook
        if time.monotonic() >= self._next_sweep:
            self._next_sweep = time.monotonic() + self.SWEEP_SECONDS
            self._MemoryStorage__expire_events()  # type: ignore[attr-defined]  # the parent's private sweep


def _window_name(item: RateLimitItem) -> str:
    return str(item.GRANULARITY.name)


class RateLimiter:
    """Counts hits against several limits at once and reports the tightest one."""

    def __init__(self, redis_url: str | None = None, *, prefix: str = "cloudlet") -> None:
        storage: Storage = RedisStorage(redis_url, key_prefix=prefix) if redis_url else LocalStorage()
        self.storage = storage
        self._limiter = FixedWindowRateLimiter(storage)

    @property
    def blocking(self) -> bool:
        """Whether a hit waits on the network (Redis), so that it must not run on the event loop."""
        return not isinstance(self.storage, MemoryStorage)

    def hit(self, key: str, *limits: RateLimitItem) -> Verdict:
        """Count one hit of key against every limit; refused (and not counted) if any limit is spent.

        The headers describe the tightest window: the one with the fewest requests left (on a tie,
        the one that resets last), or, when refused, the exhausted window that reopens last - so a
        client that waits Retry-After seconds is not refused again by a longer window.
        """
        if not limits:
            raise ValueError("hit() needs at least one limit")
        if isinstance(self.storage, LocalStorage):
            exhausted, stats = self._count_locally(self.storage, key, limits)
        else:
            exhausted = [item for item in limits if not self._limiter.test(item, key)]
            if not exhausted:
                # Another replica may spend the last slot between test() and hit().
                exhausted = [item for item in limits if not self._limiter.hit(item, key)]
            stats = [(item, self._limiter.get_window_stats(item, key)) for item in limits]
        now = time.time()
        if exhausted:
            item, window = max(((i, w) for i, w in stats if any(i is e for e in exhausted)),
                               key=lambda pair: pair[1].reset_time)
            retry_after = max(1, math.ceil(window.reset_time - now))
        else:
            item, window = min(stats, key=lambda pair: (pair[1].remaining, -pair[1].reset_time))
            retry_after = 0
        return Verdict(not exhausted, item.amount, max(0, window.remaining), math.ceil(window.reset_time),
                       retry_after, _window_name(item))

    @staticmethod
    def _count_locally(storage: LocalStorage, key: str, limits: tuple[RateLimitItem, ...]) -> tuple[
            list[RateLimitItem], list[tuple[RateLimitItem, WindowStats]]]:
        # What test(), hit() and get_window_stats() do, in one pass under one lock: on this
        # process's own counters no other replica can come between, and a request costs a few
        # dictionary reads instead of six wrapped calls through the strategy (45 microseconds).
        keys = [item.key_for(key) for item in limits]
        counts, expiries = storage.storage, storage.expirations  # MemoryStorage's own tables, read directly
        now = time.time()
        with storage.lock:
            for k in keys:
                if expiries.get(k, 0) <= now:  # a window that ended: as MemoryStorage.get drops it
                    counts.pop(k, None)
                    expiries.pop(k, None)
            exhausted = [item for item, k in zip(limits, keys, strict=True) if counts.get(k, 0) >= item.amount]
            if not exhausted:
                for item, k in zip(limits, keys, strict=True):
                    counts[k] += 1
                    if counts[k] == 1:
                        expiries[k] = now + item.get_expiry()
            stats = [(item, WindowStats(expiries.get(k, now), max(0, item.amount - counts.get(k, 0))))
                     for item, k in zip(limits, keys, strict=True)]
        return exhausted, stats

    def clear(self, key: str, *limits: RateLimitItem) -> None:
        """Forget the hits of key (after a successful login, say)."""
        for item in limits:
            self._limiter.clear(item, key)

    def healthy(self) -> bool:
        """Whether the storage answers."""
        return bool(self.storage.check())
