"""Time the WAF with a real guest behind its edge: `python -m bench.waf [--hostnames 5] [--requests 3000]`.

One `cloudlet serve` (SQLite, embedded worker) runs its edge on loopback ports, with Debian's pebble as the ACME
CA (every name resolves to 127.0.0.1, HTTP-01 checked against the edge), and builds one tiny guest whose busybox
httpd serves a page on port 80; an app puts that guest behind the edge. Then:
- each new hostname is timed from its POST to the first HTTPS answer from the edge that verifies against
  pebble's root for that name (order, challenge, validation, install and the edge's reload);
- small GETs (wrk, 32 connections) go to the guest directly, through the edge with the CRS off, and with the
  CRS on (paranoia 1), in one run, with the ratios.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import ssl
import statistics
import sys
import time

import httpx
from tests.acme_server import AcmeServer, available

from bench.api_me import free_port
from bench.edge import Result, run_wrk
from bench.instances import _ok, libvirt_missing, percentile
from bench.power import one_server

CLIENTS = 32
POLL_SECONDS = 0.05


def served_over_https(port: int, hostname: str, root: ssl.SSLContext, timeout: float = 120.0) -> None:
    """Wait until the edge answers hostname over HTTPS with a certificate that verifies for it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, \
                    root.wrap_socket(raw, server_hostname=hostname) as tls:
                tls.sendall(f"GET / HTTP/1.1\r\nHost: {hostname}\r\nConnection: close\r\n\r\n".encode())
                if tls.recv(64).startswith(b"HTTP/1.1 200"):
                    return
        except (OSError, ssl.SSLError):
            pass
        time.sleep(POLL_SECONDS)
    raise RuntimeError(f"{hostname} was not served over HTTPS in time")


def served(client: httpx.Client, app_id: int, timeout: float = 60.0) -> None:
    """Wait until the edge serves the app's latest version."""
    deadline = time.monotonic() + timeout
    while client.get(f"/api/shield/waf/{app_id}").json()["status"] != "active":
        if time.monotonic() > deadline:
            raise RuntimeError("the edge did not take the app in time")
        time.sleep(POLL_SECONDS)


def line(label: str, result: Result, base: Result | None = None) -> str:
    ratio = f", {result.rate / base.rate:.2f}x of direct" if base and base.rate else ""
    return f"  {label:<28} {result.rate:8.0f} req/s, p99 {result.p99_ms:6.1f} ms, errors {result.errors}{ratio}"


def main(argv: list[str] | None = None) -> None:
    """Build one guest behind the edge and time its certificates and its traffic."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--hostnames", type=int, default=5)
    parser.add_argument("--requests", type=int, default=3000)
    args = parser.parse_args(argv)
    missing = libvirt_missing()
    if missing is not None or not available() or not shutil.which("wrk"):
        print(f"WAF: skipped, {missing or 'pebble or wrk is not installed'}")
        return
    http_port, https_port = free_port(), free_port()
    with AcmeServer(http_port) as ca:
        edge = {"CLOUDLET_EDGE_SERVE": "true", "CLOUDLET_EDGE_LISTEN": "127.0.0.1",
                "CLOUDLET_EDGE_HTTP_PORT": str(http_port), "CLOUDLET_EDGE_HTTPS_PORT": str(https_port),
                "CLOUDLET_ACME_DIRECTORY": ca.directory_url, "CLOUDLET_ACME_CA_BUNDLE": str(ca.ca_bundle),
                "CLOUDLET_EDGE_RATE_PER_SECOND": "100000", "CLOUDLET_EDGE_BURST": "100000"}
        root = ssl.create_default_context(cadata=ca.issuing_root_pem().decode())
        with one_server("waf", 180, edge) as (client, instance_id):
            origin = client.get(f"/api/instances/{instance_id}").json()["main_ip"]
            app = _ok(client.post("/api/shield/waf", json={"name": "bench", "origin_ip": origin,
                                                           "hostname": "bench-0.example.test"}), "making the app")
            served(client, app["id"])
            times = []
            for n in range(1, args.hostnames + 1):
                hostname = f"bench-{n}.example.test"
                sent = time.monotonic()
                _ok(client.post(f"/api/shield/waf/{app['id']}/hostnames", json={"hostname": hostname}),
                    "adding a hostname")
                served_over_https(https_port, hostname, root)
                times.append(time.monotonic() - sent)
            host = "bench-0.example.test"
            direct = run_wrk(80, host, args.requests, CLIENTS, address=origin)
            _ok(client.post(f"/api/shield/waf/{app['id']}/firewall", json={"enabled": False}), "turning the CRS off")
            served(client, app["id"])
            plain = run_wrk(http_port, host, args.requests, CLIENTS)
            _ok(client.post(f"/api/shield/waf/{app['id']}/firewall", json={"enabled": True}), "turning the CRS on")
            served(client, app["id"])
            guarded = run_wrk(http_port, host, args.requests, CLIENTS)
    print(f"WAF: hostname POST to a verified HTTPS answer with pebble, {len(times)} hostnames ({os.cpu_count()} "
          f"cores): p50 {statistics.median(times):.2f} s, p95 {percentile(times, 95):.2f} s, max {max(times):.2f} s "
          "(aim: 5 s)")
    print(f"WAF: small GETs to a real tiny guest (busybox httpd under TCG), wrk with {CLIENTS} connections:")
    print(line("directly", direct))
    print(line("through the edge, CRS off", plain, direct))
    print(line("through the edge, CRS on", guarded, direct)
          + (f"; {guarded.rate / plain.rate:.2f}x of CRS off (aim: 0.70)" if plain.rate else ""))


if __name__ == "__main__":
    main(sys.argv[1:])
