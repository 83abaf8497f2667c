"""The WAF edge's cost: small GETs to an origin directly, through the edge with the CRS off, and with the CRS on
(paranoia 1), in one run, with their ratios; then how long apply() takes (`nginx -t` and a confirmed reload)
with 1,000 apps configured, and the memory nginx holds for them.

Run: `python -m bench.edge [--requests 20000] [--apps 1000] [--clients 32]` (as root, with Debian's nginx-light,
libnginx-mod-http-modsecurity and modsecurity-crs; wrk drives the load when installed, else a Python client that
shares the CPU and says so).

The origin is a second, plain nginx answering a 6-byte body, so the figures are the edge's and not a slow
origin's. Every run sends about --requests requests (wrk runs for a duration: a one-second run measures the
rate first; at most a minute per run) over keep-alive connections on 127.0.0.1, to free ports; nothing else is
contacted. The edge's per-client rate limit is raised out of the way for the run: the load comes from one
address.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import os
import re
import shutil
import signal
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from bench.api_me import _ms, free_port
from cloudlet.edge.nginx import MODSECURITY_MODULE, NGINX, Layout, Site, apply
from cloudlet.edge.server import EdgeServer

WRK_CAP_SECONDS = 60  # one load run never lasts longer than this, whatever --requests says


@dataclass
class Result:
    """The figures of one load run."""

    requests: int
    errors: int
    seconds: float
    p99_ms: float

    @property
    def rate(self) -> float:
        """Requests answered per second."""
        return self.requests / self.seconds if self.seconds else 0.0


def wait_answer(port: int, host: str, seconds: float = 30.0) -> None:
    """Return once GET / with this Host answers 200 on port."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
        try:
            connection.request("GET", "/", headers={"Host": host})
            if connection.getresponse().status == 200:
                return
        except OSError:
            pass
        finally:
            connection.close()
        time.sleep(0.05)
    raise RuntimeError(f"nothing answered 200 for {host} on port {port} within {seconds} s")


@contextlib.contextmanager
def origin_nginx(folder: Path) -> Iterator[int]:
    """A plain nginx on a free loopback port answering every GET with a small body."""
    port = free_port()
    folder.mkdir()
    conf = folder / "origin.conf"
    conf.write_text(f"""worker_processes 1;
pid {folder}/origin.pid;
error_log {folder}/error.log;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {folder}/body;
    proxy_temp_path {folder}/proxy;
    fastcgi_temp_path {folder}/fastcgi;
    uwsgi_temp_path {folder}/uwsgi;
    scgi_temp_path {folder}/scgi;
    keepalive_requests 1000000;
    server {{
        listen 127.0.0.1:{port};
        location / {{ default_type text/plain; return 200 "hello\\n"; }}
    }}
}}
""")
    process = subprocess.Popen([str(NGINX), "-p", f"{folder}/", "-c", str(conf), "-g", "daemon off;"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_answer(port, "origin")
        yield port
    finally:
        process.send_signal(signal.SIGQUIT)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


def run_wrk(port: int, host: str, requests: int, clients: int, address: str = "127.0.0.1") -> Result:
    """About `requests` GETs with wrk: it runs for a duration, so a one-second run first measures the rate and
    the real run lasts as long as that rate needs for the count (1 to WRK_CAP_SECONDS s); p99 from wrk."""
    probe = _wrk(address, port, host, clients, 1)
    seconds = min(max(round(requests / max(probe.rate, 1.0)), 1), WRK_CAP_SECONDS)
    return _wrk(address, port, host, clients, seconds)


def _wrk(address: str, port: int, host: str, clients: int, seconds: int) -> Result:
    output = subprocess.run(
        ["wrk", "-t2", f"-c{clients}", f"-d{seconds}s", "--latency", "--timeout", "10s",
         "-H", f"Host: {host}", f"http://{address}:{port}/"],
        capture_output=True, text=True, check=True, timeout=seconds + 30).stdout
    p99 = re.search(r"^\s+99%\s+(\S+)\s*$", output, re.MULTILINE)
    total = re.search(r"^\s+(\d+) requests in ([\d.]+)(ms|s|m)", output, re.MULTILINE)
    if not total or not p99:
        raise RuntimeError(f"could not read wrk's output:\n{output}")
    elapsed = float(total.group(2)) * {"ms": 0.001, "s": 1.0, "m": 60.0}[total.group(3)]
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    failures = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    errors = (int(bad.group(1)) if bad else 0) + (sum(int(n) for n in failures.groups()) if failures else 0)
    return Result(int(total.group(1)), errors, elapsed, _ms(p99.group(1)))


def run_python(port: int, host: str, requests: int, clients: int) -> Result:
    """Send `requests` GETs from threads with keep-alive connections (when wrk is missing)."""
    latencies: list[float] = []
    errors = 0
    lock = threading.Lock()
    share = requests // clients

    def client() -> None:
        nonlocal errors
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        mine: list[float] = []
        failed = 0
        for _ in range(share):
            began = time.perf_counter()
            try:
                connection.request("GET", "/", headers={"Host": host})
                reply = connection.getresponse()
                reply.read()
                failed += reply.status != 200
            except (OSError, http.client.HTTPException):
                failed += 1
                connection.close()
            mine.append(time.perf_counter() - began)
        connection.close()
        with lock:
            latencies.extend(mine)
            errors += failed

    began = time.perf_counter()
    workers = [threading.Thread(target=client) for _ in range(clients)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=WRK_CAP_SECONDS)
    elapsed = time.perf_counter() - began
    p99 = statistics.quantiles(latencies, n=100)[98] * 1000 if len(latencies) > 1 else 0.0
    return Result(len(latencies), errors, elapsed, p99)


def nginx_memory_mb(master: int) -> tuple[float, float]:
    """The master's resident memory and the largest worker's, in MB."""
    def rss(pid: int) -> float:
        status = Path(f"/proc/{pid}/status").read_text()
        found = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
        return int(found.group(1)) / 1024 if found else 0.0

    children = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                stat = (entry / "stat").read_text()
                if int(stat[stat.rfind(")") + 2:].split()[1]) == master:
                    children.append(int(entry.name))
    return rss(master), max((rss(pid) for pid in children), default=0.0)


def timed_apply(layout: Layout, sites: list[Site]) -> float:
    """Seconds one apply() takes: render, `nginx -t`, swap, and a reload nginx confirmed."""
    began = time.perf_counter()
    apply(layout, sites, seconds=600)
    return time.perf_counter() - began


def timed_check(layout: Layout) -> float:
    """Seconds `nginx -t` takes on the configuration in place."""
    began = time.perf_counter()
    subprocess.run([str(NGINX), "-t", "-q", "-p", f"{layout.root}/", "-c", str(layout.conf)], check=True,
                   capture_output=True, timeout=600)
    return time.perf_counter() - began


def main(argv: list[str] | None = None) -> None:
    """Measure and print."""
    parser = argparse.ArgumentParser(prog="python -m bench.edge")
    parser.add_argument("--requests", type=int, default=20_000, help="requests per load run")
    parser.add_argument("--apps", type=int, default=1000, help="apps configured for the apply() timing")
    parser.add_argument("--clients", type=int, default=32, help="concurrent keep-alive connections")
    args = parser.parse_args(argv)
    if os.geteuid() != 0 or not NGINX.exists() or not MODSECURITY_MODULE.exists():
        print("  skipped: needs root, Debian's nginx and its ModSecurity module")
        return
    requests = max(args.requests, 2 * args.clients)
    holder = Path(tempfile.mkdtemp(prefix="cloudlet-bench-edge-"))
    holder.chmod(0o755)  # nginx's www-data workers walk down to the edge's files
    try:
        with origin_nginx(holder / "origin") as origin_port:
            layout = Layout(root=holder / "edge", http_port=free_port(), https_port=free_port(), listen="127.0.0.1",
                            rate_per_second=1_000_000, burst=1_000_000, connections_per_client=60_000)
            edge = EdgeServer(layout)
            edge.start()
            try:
                measure(layout, edge, origin_port, requests, args.clients, args.apps)
            finally:
                edge.stop()
    finally:
        shutil.rmtree(holder, ignore_errors=True)


def measure(layout: Layout, edge: EdgeServer, origin_port: int, requests: int, clients: int, apps: int) -> None:
    """The load runs, then the apply() timings."""
    off = Site(1, ("crs-off.bench.example",), "127.0.0.1", origin_port, origin_tls=False, waf=False)
    on = Site(2, ("crs-on.bench.example",), "127.0.0.1", origin_port, origin_tls=False, waf=True, paranoia=1)
    apply(layout, [off, on])
    if shutil.which("wrk"):
        generator = f"wrk, 2 threads, {clients} connections"

        def drive(port: int, host: str) -> Result:
            return run_wrk(port, host, requests, clients)
    else:
        generator = f"Python threads ({clients} connections; wrk not installed, so it shares the CPU)"

        def drive(port: int, host: str) -> Result:
            return run_python(port, host, requests, clients)

    print(f"  small GETs, about {requests} per run, keep-alive, {generator}, on {os.cpu_count()} CPUs")
    for port, host in ((origin_port, "origin"), (layout.http_port, off.hostnames[0]),
                       (layout.http_port, on.hostnames[0])):
        wait_answer(port, host)
        run_python(port, host, 4 * clients, clients)  # warm-up: connections, caches, the CRS's first transactions
    direct = drive(origin_port, "origin")
    without = drive(layout.http_port, off.hostnames[0])
    crs = drive(layout.http_port, on.hostnames[0])
    for label, result, ratio in (
            ("origin directly", direct, ""),
            ("edge, CRS off", without, f"{without.rate / direct.rate:.2f}x origin"),
            ("edge, CRS on (PL1)", crs,
             f"{crs.rate / direct.rate:.2f}x origin, {crs.rate / without.rate:.2f}x CRS off")):
        print(f"  {label:<20} {result.rate:>9,.0f} req/s  p99 {result.p99_ms:7.2f} ms  "
              f"({result.requests} in {result.seconds:.1f} s, {result.errors} errors)  {ratio}")

    many = [Site(n, (f"app{n}.bench.example", f"www.app{n}.bench.example"), "127.0.0.1", origin_port,
                 origin_tls=False, waf=n % 10 != 0, paranoia=1 + n % 4, excluded_rules=(942100,) if n % 7 == 0 else ())
            for n in range(3, apps + 3)]
    first = timed_apply(layout, [off, on, *many])
    check = timed_check(layout)
    many[apps // 2] = Site(many[apps // 2].app_id, many[apps // 2].hostnames, "127.0.0.1", origin_port,
                           origin_tls=False, waf=True, paranoia=2, excluded_rules=(920350,))
    change = timed_apply(layout, [off, on, *many])
    same = timed_apply(layout, [off, on, *many])
    wait_answer(layout.http_port, many[apps // 2].hostnames[0])
    master = edge.pid
    memory = nginx_memory_mb(master) if master else (0.0, 0.0)
    print(f"  apply() with {apps} apps ({sum(site.waf for site in many)} with the CRS), validate + reload: "
          f"from 2 apps {first:.2f} s, one app changed {change:.2f} s, unchanged {same:.3f} s; "
          f"nginx -t alone {check:.2f} s")
    print(f"  nginx with {apps} apps: master {memory[0]:.0f} MB resident, largest worker {memory[1]:.0f} MB")


if __name__ == "__main__":
    main()
