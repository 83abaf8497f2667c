"""The edge's nginx as a running service: EdgeServer starts its master (in the foreground, a child process of its
own process group, told to stop by a parent-death signal) on a layout of edge/nginx.py, and a supervisor thread
starts it again, with a growing pause, if it exits while it should run."""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import subprocess
import threading
import time

import structlog

from cloudlet.edge import nginx

log = structlog.get_logger(__name__)

SETPRIV = "/usr/bin/setpriv"  # util-linux: runs nginx with a parent-death signal
SIGNAL_SECONDS = 10.0
PROBE_SECONDS = 1.0  # one HTTP probe of a starting edge
RESTART_BACKOFF = (0.5, 30.0)  # the supervisor's first and longest wait before starting nginx again
STABLE_SECONDS = 60.0  # a run this long resets the backoff


class EdgeStartFailed(Exception):
    """nginx did not come up on the layout; the message is nginx's own error."""


def _kill_group(pgid: int) -> None:
    """Kill every process of nginx's process group: workers outlive a master that was killed."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def group_members(pgid: int) -> list[int]:
    """The live (not zombie) processes of a process group."""
    return [pid for pid, state, _, group in nginx.processes() if group == pgid and state != "Z"]


class EdgeServer:
    """Runs nginx (its master in the foreground, a child process) on a layout and keeps it running."""

    def __init__(self, layout: nginx.Layout, *, start_seconds: float = 60.0, stop_seconds: float = 15.0) -> None:
        self.layout = layout
        self.start_seconds = start_seconds
        self.stop_seconds = stop_seconds
        self.restarts = 0  # how many times the supervisor started nginx again
        self._lock = threading.RLock()
        self._stopping = threading.Event()
        self._process: subprocess.Popen[bytes] | None = None
        self._supervisor: threading.Thread | None = None

    @property
    def pid(self) -> int | None:
        """The nginx master's pid while one runs."""
        process = self._process
        return process.pid if process is not None and process.poll() is None else None

    def is_running(self) -> bool:
        """Whether nginx's master is running and has not been asked to stop."""
        return self.pid is not None and not self._stopping.is_set()

    def start(self) -> None:
        """Run nginx (on an empty configuration if none is in place) until it answers on http_port, or raise."""
        # EdgeStartFailed carries nginx's own error; starting a running edge does nothing
        with self._lock:
            if self.pid is not None:
                return
            nginx.check_layout(self.layout)
            nginx.prepare(self.layout)
            if not nginx.reachable_by(self.layout.challenge_dir, self.layout.worker_user):
                raise EdgeStartFailed(f"the worker user {self.layout.worker_user} cannot reach {self.layout.root}: "
                                      "challenge and temporary files would fail (open the directories above it)")
            if nginx.current_generation(self.layout) is None or not self.layout.conf.exists():
                nginx.apply(self.layout, [], seconds=self.start_seconds)
            self._end_stale()
            self._stopping.clear()
            with nginx.applying(self.layout):  # nginx reads the configuration in place while no apply() replaces it
                self._spawn()
            if self._supervisor is None or not self._supervisor.is_alive():
                self._supervisor = threading.Thread(target=self._supervise, name="edge-nginx", daemon=True)
                self._supervisor.start()

    def stop(self) -> None:
        """Ask nginx to finish its requests and quit, kill it past the deadline; idempotent."""
        self._stopping.set()
        with self._lock:
            process, self._process = self._process, None
            if process is not None:
                self._end(process)
        supervisor = self._supervisor
        if supervisor is not None and supervisor is not threading.current_thread():
            supervisor.join(timeout=self.stop_seconds)

    def _end(self, process: subprocess.Popen[bytes]) -> None:
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGQUIT)  # graceful: in-flight requests finish
            try:
                process.wait(timeout=self.stop_seconds)
            except subprocess.TimeoutExpired:
                log.warning("edge did not quit in time; killed", pid=process.pid)
                _kill_group(process.pid)
                process.wait(timeout=SIGNAL_SECONDS)
        _kill_group(process.pid)  # workers still draining, or orphaned by a master that was killed
        deadline = time.monotonic() + SIGNAL_SECONDS
        while group_members(process.pid) and time.monotonic() < deadline:
            time.sleep(0.02)

    def _end_stale(self) -> None:
        """A master left running on this layout by an earlier process of ours (it would hold the ports)."""
        pid = nginx.master_pid(self.layout)
        if pid is None:
            return
        log.warning("stopping an edge left running on this layout", pid=pid)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGQUIT)
        deadline = time.monotonic() + self.stop_seconds
        while nginx.master_pid(self.layout) == pid and time.monotonic() < deadline:
            time.sleep(0.05)
        _kill_group(pid)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)

    def _spawn(self) -> None:
        layout = self.layout
        with contextlib.suppress(FileNotFoundError):
            layout.pid_file.unlink()
        try:
            since = layout.error_log.stat().st_size
        except OSError:
            since = 0
        with (layout.logs / "nginx.stderr.log").open("ab") as stderr:
            process = subprocess.Popen(  # noqa: S603  # our fixed binary, paths we made
                # setpriv: the master is told to stop (SIGTERM) when the thread that started it ends, however its
                # parent ends (uvicorn re-raises SIGTERM after its shutdown, so no `finally` of ours runs then)
                [SETPRIV, "--pdeathsig", "TERM", "--",
                 str(nginx.NGINX), "-p", f"{layout.root}/", "-c", str(layout.conf), "-g", "daemon off;"],
                cwd=layout.root, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr,
                env=nginx.nginx_env(), start_new_session=True)  # its own group: stop() can reach its workers
        self._process = process
        deadline = time.monotonic() + self.start_seconds
        while time.monotonic() < deadline:
            if process.poll() is not None:
                self._process = None
                _kill_group(process.pid)
                raise EdgeStartFailed(self._why(since) or f"nginx exited with status {process.returncode}")
            if self._answers():
                return
            time.sleep(0.05)
        self._process = None
        self._end(process)
        raise EdgeStartFailed(self._why(since) or f"nginx did not answer within {self.start_seconds:.0f} s")

    def _why(self, since: int) -> str:
        texts = []
        with contextlib.suppress(OSError), self.layout.error_log.open("rb") as handle:
            handle.seek(since)
            texts.append(handle.read().decode(errors="replace"))
        with contextlib.suppress(OSError):
            texts.append((self.layout.logs / "nginx.stderr.log").read_text(errors="replace")[-4000:])
        problems = [line for text in texts for line in text.splitlines() if "[emerg]" in line or "[alert]" in line]
        return nginx.trimmed(problems[-1], self.layout) if problems else ""

    def _answers(self) -> bool:
        """Whether an HTTP request to http_port gets an HTTP answer (the default server's)."""
        host = "127.0.0.1" if self.layout.listen == "0.0.0.0" else self.layout.listen  # noqa: S104
        connection = http.client.HTTPConnection(host, self.layout.http_port, timeout=PROBE_SECONDS)
        try:
            connection.request("GET", "/", headers={"Host": "edge-probe.invalid"})
            connection.getresponse().read()
        except (OSError, http.client.HTTPException):
            return False
        finally:
            connection.close()
        return True

    def _supervise(self) -> None:
        backoff = RESTART_BACKOFF[0]
        started = time.monotonic()
        while not self._stopping.is_set():
            process = self._process
            if process is None:
                if self._stopping.wait(0.1):
                    return
                continue
            try:
                process.wait(timeout=0.5)
            except subprocess.TimeoutExpired:
                continue
            if self._stopping.is_set():
                return
            log.warning("edge exited; starting it again", status=process.returncode, wait_seconds=backoff)
            _kill_group(process.pid)  # its orphaned workers would keep the ports
            if time.monotonic() - started > STABLE_SECONDS:
                backoff = RESTART_BACKOFF[0]
            if self._stopping.wait(backoff):
                return
            with self._lock:
                if self._stopping.is_set() or self._process is not process:
                    continue
                try:
                    with nginx.applying(self.layout):
                        self._spawn()
                except (EdgeStartFailed, OSError) as failure:
                    self._process = process  # still the dead one: the next turn waits longer and tries again
                    log.error("edge did not start again", error=str(failure))
                    backoff = min(backoff * 2, RESTART_BACKOFF[1])
                    continue
                self.restarts += 1
                started = time.monotonic()
