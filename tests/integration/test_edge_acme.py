"""The edge's ACME client against Debian's real pebble, its HTTP-01 challenges served from loopback."""

from __future__ import annotations

import http.server
import json
import secrets
import socket
import stat
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.verification import PolicyBuilder, Store

from cloudlet.edge.acme import AcmeFailed, Issued, Issuer, Order, issue
from tests.acme_server import AcmeServer, available, free_port

pytestmark = pytest.mark.skipif(not available(), reason="Debian's pebble is not installed: apt-get install pebble")

HOSTNAME = "app.example.test"
PATH_PREFIX = "/.well-known/acme-challenge/"


class ChallengeSite:
    """A threaded HTTP server on 127.0.0.1 serving challenge_dir at /.well-known/acme-challenge/, or misbehaving."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.mode = "serve"  # "serve" | "nothing" (404) | "wrong" (another body)
        site = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                token = self.path.removeprefix(PATH_PREFIX)
                file = site.root / token
                if site.mode == "wrong":
                    self._reply(200, b"not the key authorization")
                elif site.mode == "serve" and self.path.startswith(PATH_PREFIX) and "/" not in token and file.is_file():
                    self._reply(200, file.read_bytes())
                else:
                    self._reply(404, b"not found")

            def _reply(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:  # quiet: failures are asserted, not read
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.port = int(self.server.server_address[1])
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> ChallengeSite:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChallengeSite]:
    with ChallengeSite(tmp_path_factory.mktemp("challenges")) as running:
        yield running


@pytest.fixture(scope="module")
def pebble(site: ChallengeSite) -> Iterator[AcmeServer]:
    with AcmeServer(http_port=site.port) as server:
        yield server


@pytest.fixture
def serving(site: ChallengeSite) -> Iterator[ChallengeSite]:
    site.mode = "serve"
    yield site
    site.mode = "serve"


def issue_from(pebble: AcmeServer, site: ChallengeSite, account_key: Path, hostname: str = HOSTNAME) -> Issued:
    return issue(pebble.directory_url, hostname, site.root, account_key, ca_bundle=pebble.ca_bundle,
                 email="ops@example.com", seconds=60)


def assert_chains_to_pebble(issued: Issued, pebble: AcmeServer, hostname: str) -> None:
    chain = x509.load_pem_x509_certificates(issued.fullchain_pem)
    root = x509.load_pem_x509_certificate(pebble.issuing_root_pem())
    verifier = PolicyBuilder().store(Store([root])).build_server_verifier(x509.DNSName(hostname))
    path = verifier.verify(chain[0], chain[1:])
    assert path[-1] == root
    key = serialization.load_pem_private_key(issued.key_pem, password=None)
    assert chain[0].public_key() == key.public_key()


def test_a_certificate_is_issued_that_chains_to_pebbles_root(pebble: AcmeServer, serving: ChallengeSite,
                                                             tmp_path: Path) -> None:
    account_key = tmp_path / "account.pem"

    issued = issue_from(pebble, serving, account_key)

    assert_chains_to_pebble(issued, pebble, HOSTNAME)
    assert issued.not_after > datetime.now(UTC)
    assert issued.not_after.tzinfo is not None
    assert list(serving.root.iterdir()) == []
    assert stat.S_IMODE(account_key.stat().st_mode) == 0o600
    assert b"PRIVATE KEY" not in repr(issued).encode()


def test_the_account_key_is_made_once_and_the_account_found_again(pebble: AcmeServer, serving: ChallengeSite,
                                                                  tmp_path: Path) -> None:
    account_key = tmp_path / "keys" / "account.pem"
    first = issue_from(pebble, serving, account_key)
    key_bytes = account_key.read_bytes()

    second = issue_from(pebble, serving, account_key)

    assert account_key.read_bytes() == key_bytes
    assert second.key_pem != first.key_pem  # a fresh certificate key each time
    with Issuer(pebble.directory_url, account_key, ca_bundle=pebble.ca_bundle, seconds=10) as one, \
         Issuer(pebble.directory_url, account_key, ca_bundle=pebble.ca_bundle, seconds=10) as other:
        assert one.account_url == other.account_url


def test_the_stages_resume_from_a_stored_order(pebble: AcmeServer, serving: ChallengeSite, tmp_path: Path) -> None:
    account_key = tmp_path / "account.pem"
    with Issuer(pebble.directory_url, account_key, ca_bundle=pebble.ca_bundle, seconds=30) as issuer:
        stored = issuer.order("www.example.test").to_json()
    # Each task below runs as a worker would after a restart: a new issuer, the order read back.
    order = Order.from_json(stored)
    assert len(order.challenges) == 1
    with Issuer(pebble.directory_url, account_key, ca_bundle=pebble.ca_bundle, seconds=30) as issuer:
        issuer.answer(order, serving.root)
        issuer.answer(order, serving.root)  # repeated at once: the CA is not asked twice
    with Issuer(pebble.directory_url, account_key, ca_bundle=pebble.ca_bundle, seconds=30) as issuer:
        issuer.validate(order, serving.root)
        assert list(serving.root.iterdir()) == []
        issuer.answer(order, serving.root)  # a retried task: the CA has decided, nothing is sent
        issuer.validate(order, serving.root)
        assert list(serving.root.iterdir()) == []
        issued = issuer.finalize(order)
        with pytest.raises(AcmeFailed, match="open a new order"):
            issuer.finalize(order)  # the first key is in `issued` only: a second finalize cannot recover it
    assert_chains_to_pebble(issued, pebble, "www.example.test")


@pytest.mark.parametrize(("mode", "problem"), [
    ("nothing", "404"),
    ("wrong", "did not match"),
])
def test_a_failed_challenge_carries_pebbles_problem_and_a_fixed_site_then_succeeds(
        pebble: AcmeServer, serving: ChallengeSite, tmp_path: Path, mode: str, problem: str) -> None:
    account_key = tmp_path / "account.pem"
    serving.mode = mode

    with pytest.raises(AcmeFailed) as failed:
        issue_from(pebble, serving, account_key)

    assert "urn:ietf:params:acme:error:unauthorized" in failed.value.reason
    assert problem in failed.value.reason
    assert HOSTNAME in failed.value.reason
    assert failed.value.retry_after is None
    assert list(serving.root.iterdir()) == []
    serving.mode = "serve"
    assert_chains_to_pebble(issue_from(pebble, serving, account_key), pebble, HOSTNAME)


def test_nothing_listening_on_the_http_port_is_a_connection_problem(serving: ChallengeSite, tmp_path: Path) -> None:
    # A second pebble whose VA dials a port nobody serves.
    with AcmeServer(http_port=free_port()) as unreachable, pytest.raises(AcmeFailed) as failed:
        issue_from(unreachable, serving, tmp_path / "account.pem")
    assert "urn:ietf:params:acme:error:connection" in failed.value.reason
    assert list(serving.root.iterdir()) == []


def test_a_refused_directory_fails_at_once(tmp_path: Path) -> None:
    started = time.monotonic()
    with pytest.raises(AcmeFailed, match="cannot reach the CA"):
        issue(f"https://127.0.0.1:{free_port()}/dir", HOSTNAME, tmp_path / "challenges", tmp_path / "account.pem",
              seconds=10)
    assert time.monotonic() - started < 10


def test_a_directory_that_never_answers_fails_within_the_deadline(tmp_path: Path) -> None:
    # A socket that listens but never accepts: the connection completes, the TLS handshake never does.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        started = time.monotonic()
        with pytest.raises(AcmeFailed, match="no answer from the CA in time"):
            issue(f"https://127.0.0.1:{silent.getsockname()[1]}/dir", HOSTNAME, tmp_path / "challenges",
                  tmp_path / "account.pem", seconds=1.5)
        elapsed = time.monotonic() - started
    assert 1.0 < elapsed < 5.0


class RateLimitingCa(http.server.BaseHTTPRequestHandler):
    """Just enough of an ACME server to refuse a new account as Let's Encrypt does when rate-limited."""

    def do_GET(self) -> None:
        base = f"http://{self.headers['Host']}"
        self._reply(200, {"newNonce": f"{base}/nonce", "newAccount": f"{base}/account",
                          "newOrder": f"{base}/order", "revokeCert": f"{base}/revoke", "keyChange": f"{base}/key"})

    def do_HEAD(self) -> None:
        self._reply(200, None)

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        self._reply(429, {"type": "urn:ietf:params:acme:error:rateLimited",
                          "detail": "too many new accounts from this address"}, retry_after="7")

    def _reply(self, status: int, body: object, retry_after: str | None = None) -> None:
        data = json.dumps(body).encode() if body is not None else b""
        self.send_response(status)
        self.send_header("Replay-Nonce", secrets.token_urlsafe(16))
        self.send_header("Content-Type", "application/problem+json" if status >= 400 else "application/json")
        if retry_after:
            self.send_header("Retry-After", retry_after)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:  # quiet: failures are asserted, not read
        pass


def test_a_rate_limit_says_when_to_retry(tmp_path: Path) -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), RateLimitingCa)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with pytest.raises(AcmeFailed) as failed:
            issue(f"http://127.0.0.1:{server.server_address[1]}/dir", HOSTNAME, tmp_path / "challenges",
                  tmp_path / "account.pem", seconds=10)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
    assert failed.value.retry_after == 7
    assert "urn:ietf:params:acme:error:rateLimited: too many new accounts" in failed.value.reason
