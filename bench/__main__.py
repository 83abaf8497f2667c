"""Run every benchmark: `python -m bench` (each also runs alone, e.g. `python -m bench.api_me`).

Every module of this package with a main() is a benchmark; the API load test runs last because
it is the longest and starts servers of its own.
"""

from __future__ import annotations

import importlib
import pkgutil

import bench

LAST = "api_me"


def main() -> None:
    """Run each benchmark module's main() in turn."""
    names = sorted(m.name for m in pkgutil.iter_modules(bench.__path__) if not m.name.startswith("_"))
    names.sort(key=lambda name: name == LAST)
    for name in names:
        module = importlib.import_module(f"bench.{name}")
        run = getattr(module, "main", None)
        if callable(run):
            print(f"== bench.{name}", flush=True)
            run()
            print(flush=True)


if __name__ == "__main__":
    main()
