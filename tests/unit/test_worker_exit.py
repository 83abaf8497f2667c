"""A stopping worker ends within its bound whatever it is stuck on: its timer thread leaves at once (exit 0, a
line on stderr), and should no Python thread run, the kernel's alarm ends the process."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap

STUCK = textwrap.dedent("""
    import sys, threading, time
    from cloudlet.cli import main
    if sys.argv[1] == "no-timer":  # as if no Python thread could run: only the alarm is left
        class Idle:
            def __init__(self, *args, **kwargs): pass
            daemon = False
            def start(self): pass
        threading.Timer = Idle
    main._exit_by(1.0)
    threading.Event().wait()  # stuck, as a stop waiting on a hung step is
""")


def run(mode: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", STUCK, mode], capture_output=True, text=True, timeout=30,
                          check=False)


def test_the_timer_ends_a_stuck_worker() -> None:
    ended = run("timer")
    assert ended.returncode == 0 and "worker still stopping after 1 s; exiting now" in ended.stderr


def test_the_alarm_ends_it_when_no_python_thread_runs() -> None:
    ended = run("no-timer")
    assert ended.returncode == -signal.SIGALRM, (ended.returncode, ended.stderr)
