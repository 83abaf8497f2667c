"""Deadlines: how long a task may take, and how to stop waiting for a call that never returns.

A Python thread cannot be killed, so a call past its deadline is abandoned rather than stopped: it runs
on in a daemon thread of its own while the caller goes on (a driver call stuck on a dead node stays
stuck; whatever it does when it returns is no longer recorded, and the reconciler reports the
difference). What matters is that the workflow stops waiting at the deadline.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")

# Settings names read through Deadline.waits: a task that waits for a guest gets that wait on top of its own time.
SettingsReader = Callable[[Any], float]


class DeadlineExceeded(Exception):
    """A call did not return within its deadline; it was abandoned (still running in its thread)."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"did not finish within {seconds:g} s")
        self.seconds = seconds


@dataclass(frozen=True)
class Deadline:
    """How long a task may take: its own allowance plus the configured waits it includes, times the scale."""

    seconds: float
    waits: SettingsReader | None = None

    def for_settings(self, settings: Any) -> float:
        """The deadline in seconds under these settings (their action_deadline_scale applied)."""
        base = self.seconds + (self.waits(settings) if self.waits is not None else 0.0)
        return base * float(settings.action_deadline_scale)


def within(seconds: float, call: Callable[[], T], *, name: str = "cloudlet-deadline") -> T:
    """call()'s result, or DeadlineExceeded once `seconds` have passed (the call is left running in its thread).

    Exceptions of call() are raised here as they are.
    """
    finished = threading.Event()
    outcome: list[tuple[bool, Any]] = []

    def body() -> None:
        try:
            outcome.append((True, call()))
        except BaseException as error:  # handed to the waiting thread, which raises it
            outcome.append((False, error))
        finally:
            finished.set()

    # daemon: a call stuck forever must not keep the process from exiting
    threading.Thread(target=body, name=name, daemon=True).start()
    if not finished.wait(max(0.0, seconds)):
        raise DeadlineExceeded(seconds)
    ok, value = outcome[0]
    if not ok:
        raise value
    result: T = value
    return result
