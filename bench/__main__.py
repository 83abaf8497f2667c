"""Run every benchmark: `python -m bench` (each also runs alone, e.g. `python -m bench.api_me`)."""

from __future__ import annotations

from bench import api_me, ratelimit


def main() -> None:
    """The rate limiter's cost, then the API under load."""
    ratelimit.main()
    print()
    api_me.main([])


if __name__ == "__main__":
    main()
