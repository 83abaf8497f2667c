"""What the rate limiter costs per request: RateLimiter.hit with a token's two limits (minute, hour).

Run: `python -m bench.ratelimit` (Redis at CLOUDLET_BENCH_REDIS_URL, default redis://127.0.0.1:6379/15;
skipped with a note when it does not answer). Prints microseconds per hit.
"""

from __future__ import annotations

import os
import statistics
import time
import uuid

from cloudlet.kit.ratelimit import RateLimiter, per_hour, per_minute

REDIS_URL = os.environ.get("CLOUDLET_BENCH_REDIS_URL", "redis://127.0.0.1:6379/15")


def measure(limiter: RateLimiter, hits: int) -> dict[str, float]:
    """Time `hits` calls of hit() on one key with two generous limits; microseconds per call."""
    limits = (per_minute(10**9), per_hour(10**9))
    for _ in range(min(200, hits)):  # warm up connections and caches
        limiter.hit("token:warmup", *limits)
    samples = []
    started = time.perf_counter()
    for n in range(hits):
        before = time.perf_counter_ns()
        limiter.hit(f"token:{n % 50}", *limits)  # fifty tokens, as on a busy server
        samples.append((time.perf_counter_ns() - before) / 1000)
    total = time.perf_counter() - started
    samples.sort()
    return {
        "mean_us": total / hits * 1e6,
        "p50_us": statistics.median(samples),
        "p99_us": samples[int(len(samples) * 0.99) - 1],
        "hits_per_s": hits / total,
    }


def report(name: str, figures: dict[str, float]) -> None:
    """Print one line of figures."""
    print(f"  {name:<8} mean {figures['mean_us']:8.1f} us   p50 {figures['p50_us']:8.1f} us   "
          f"p99 {figures['p99_us']:8.1f} us   ({figures['hits_per_s']:,.0f} hits/s on one thread)")


def _redis_limiter(prefix: str) -> RateLimiter | None:
    try:
        limiter = RateLimiter(REDIS_URL, prefix=prefix)
        return limiter if limiter.healthy() else None
    except Exception as exc:
        print(f"  redis    skipped: {REDIS_URL} does not answer ({type(exc).__name__}: {exc})")
        return None


def _forget(prefix: str) -> None:
    import redis  # only when Redis is in use

    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


def main() -> None:
    """Measure memory storage, then Redis."""
    print("rate limiter: RateLimiter.hit(key, per_minute, per_hour) - two limits, as for every token request")
    report("memory", measure(RateLimiter(None), 50_000))
    prefix = f"cloudlet-bench-{uuid.uuid4().hex[:8]}"
    limiter = _redis_limiter(prefix)
    if limiter is not None:
        try:
            report("redis", measure(limiter, 5_000))
        finally:
            _forget(prefix)


if __name__ == "__main__":
    main()
