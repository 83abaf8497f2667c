"""How long issue() takes from call to certificate, against Debian's pebble on loopback (HTTP-01).

Run from the repository root: `python -m bench.acme` (skipped with a note without /usr/bin/pebble).
Prints the median of 5 issuances with a new account each (registration included) and of 5 with
an account already registered. pebble runs with PEBBLE_VA_NOSLEEP=1, so this is the client's and
the protocol's cost, not a public CA's queueing.
"""

from __future__ import annotations

import http.server
import statistics
import tempfile
import threading
import time
from pathlib import Path

from tests.acme_server import AcmeServer, available

from cloudlet.edge.acme import issue

ROUNDS = 5
HOSTNAME = "app.example.test"


def serve_challenges(root: Path) -> http.server.ThreadingHTTPServer:
    """A threaded loopback server answering /.well-known/acme-challenge/<token> from root."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            file = root / self.path.rsplit("/", 1)[-1]
            body = file.read_bytes() if file.is_file() else b""
            self.send_response(200 if body else 404)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def measure(ca: AcmeServer, challenges: Path, account_key: Path) -> float:
    """Seconds for one issue() call."""
    started = time.perf_counter()
    issue(ca.directory_url, HOSTNAME, challenges, account_key, ca_bundle=ca.ca_bundle, seconds=60)
    return time.perf_counter() - started


def main() -> None:
    """Print the medians."""
    if not available():
        print("acme: skipped, /usr/bin/pebble is not installed")
        return
    with tempfile.TemporaryDirectory(prefix="bench-acme-") as scratch:
        work = Path(scratch)
        server = serve_challenges(work / "challenges")
        try:
            with AcmeServer(http_port=int(server.server_address[1])) as ca:
                cold = [measure(ca, work / "challenges", work / f"account-{n}.pem") for n in range(ROUNDS)]
                warm = [measure(ca, work / "challenges", work / "account-0.pem") for _ in range(ROUNDS)]
        finally:
            server.shutdown()
            server.server_close()
    print(f"acme issue() with pebble, new account:      median {statistics.median(cold) * 1000:7.1f} ms "
          f"(min {min(cold) * 1000:.1f}, max {max(cold) * 1000:.1f}, n={ROUNDS})")
    print(f"acme issue() with pebble, existing account: median {statistics.median(warm) * 1000:7.1f} ms "
          f"(min {min(warm) * 1000:.1f}, max {max(warm) * 1000:.1f}, n={ROUNDS})")


if __name__ == "__main__":
    main()
