"""The WAF edge on the real nginx, ModSecurity v3 and OWASP CRS from Debian, on free loopback ports, in front of
a small origin that records what reaches it: what passes, what the CRS refuses, what traffic() reports, and how
the edge survives a refused configuration, a killed master and a stop."""

from __future__ import annotations

import contextlib
import datetime
import http.client
import os
import shutil
import signal
import socket
import ssl
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from cloudlet.edge.logs import traffic
from cloudlet.edge.nginx import (
    CRS_RULES,
    MODSECURITY_MODULE,
    NGINX,
    WORKER_USER,
    Certificate,
    EdgeRejected,
    Layout,
    Site,
    apply,
)
from cloudlet.edge.server import EdgeServer, group_members

pytestmark = pytest.mark.skipif(
    not (NGINX.exists() and MODSECURITY_MODULE.exists() and CRS_RULES.is_dir()),
    reason=f"the edge needs Debian's nginx ({NGINX}), its ModSecurity module ({MODSECURITY_MODULE}) and the CRS "
           f"({CRS_RULES}): apt-get install nginx-light libnginx-mod-http-modsecurity modsecurity-crs")

HOST = "shop.example"
SQLI = "/?id=1'%20OR%20'1'='1"
TRAVERSAL = "/?f=../../etc/passwd"
XSS = "/?q=<script>alert(1)</script>"
SECONDS = 15.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for(condition: Callable[[], bool], what: str, seconds: float = SECONDS) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"still not {what} after {seconds} s")
        time.sleep(0.05)


@dataclass
class Seen:
    path: str
    headers: dict[str, str]


@dataclass
class Origin:
    """A threaded HTTP server on loopback that answers 200 and records every request it got."""

    address: str
    port: int
    seen: list[Seen] = field(default_factory=list)

    def paths(self) -> list[str]:
        return [request.path for request in self.seen]


@dataclass(frozen=True)
class Pem:
    chain: Path
    key: Path


@contextlib.contextmanager
def serving_origin(address: str = "127.0.0.1", tls: Pem | None = None) -> Iterator[Origin]:
    origin = Origin(address, 0)
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # nginx keeps its upstream connections alive

        def do_GET(self) -> None:
            with lock:
                origin.seen.append(Seen(self.path, {k.lower(): v for k, v in self.headers.items()}))
            body = f"origin saw {self.path}".encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    class Server(ThreadingHTTPServer):
        address_family = socket.AF_INET6 if ":" in address else socket.AF_INET
        daemon_threads = True

    server = Server((address, 0), Handler)
    if tls is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(tls.chain, tls.key)
        server.socket = context.wrap_socket(server.socket, server_side=True)
    origin.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield origin
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def origin() -> Iterator[Origin]:
    with serving_origin() as running:
        yield running


@pytest.fixture
def edge_root(tmp_path: Path) -> Iterator[Path]:
    """The edge's directory. nginx's workers run as www-data and read challenge files and write temporary files
    there, but pytest's base directory is root's alone (0700): the edge lives in a directory of its own under
    /tmp, removed afterwards."""
    holder = Path(tempfile.mkdtemp(prefix="cloudlet-edge-test-"))
    holder.chmod(0o755)
    try:
        yield holder / "edge"
    finally:
        shutil.rmtree(holder, ignore_errors=True)


@pytest.fixture
def layout(edge_root: Path) -> Layout:
    # limits high enough for a test's bursts; one test lowers them on purpose
    return Layout(root=edge_root, http_port=free_port(), https_port=free_port(), listen="127.0.0.1",
                  rate_per_second=1000, burst=1000)


@pytest.fixture
def edge(layout: Layout) -> Iterator[EdgeServer]:
    server = EdgeServer(layout)
    server.start()
    try:
        yield server
    finally:
        master = server.pid
        server.stop()
        if master is not None:
            assert group_members(master) == []


@pytest.fixture
def pem(tmp_path: Path) -> Pem:
    """A self-signed certificate for HOST (its key stays in tmp_path, read by nginx's master only)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, HOST)])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                   .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(hours=1))
                   .not_valid_after(now + datetime.timedelta(days=1))
                   .add_extension(x509.SubjectAlternativeName([x509.DNSName(HOST)]), critical=False)
                   .sign(key, hashes.SHA256()))
    chain, key_file = tmp_path / "fullchain.pem", tmp_path / "key.pem"
    chain.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return Pem(chain, key_file)


def app(origin: Origin, **changes: object) -> Site:
    base = Site(app_id=1, hostnames=(HOST, f"www.{HOST}"), origin_ip=origin.address, origin_port=origin.port,
                origin_tls=False, waf=True)
    return replace(base, **changes)  # type: ignore[arg-type]


class _SniConnection(http.client.HTTPSConnection):
    """HTTPS to loopback with the SNI of a hostname, not verifying the self-signed certificate."""

    def __init__(self, port: int, hostname: str) -> None:
        self._tls = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        self._tls.check_hostname = False
        self._tls.verify_mode = ssl.CERT_NONE
        super().__init__("127.0.0.1", port, timeout=10, context=self._tls)
        self._sni = hostname

    def connect(self) -> None:
        self.sock = self._tls.wrap_socket(socket.create_connection((self.host, self.port), 10),
                                          server_hostname=self._sni)


def get(layout: Layout, path: str, host: str = HOST, *, https: bool = False) -> tuple[int, str]:
    connection = (_SniConnection(layout.https_port, host) if https
                  else http.client.HTTPConnection("127.0.0.1", layout.http_port, timeout=10))
    try:
        connection.request("GET", path, headers={"Host": host, "User-Agent": "cloudlet-test", "Accept": "*/*"})
        reply = connection.getresponse()
        return reply.status, reply.read().decode(errors="replace")
    finally:
        connection.close()


def test_a_clean_request_reaches_the_origin_with_the_forwarding_headers(edge: EdgeServer, layout: Layout,
                                                                        origin: Origin) -> None:
    apply(layout, [app(origin)])
    assert get(layout, "/hello?x=1") == (200, "origin saw /hello?x=1")
    assert get(layout, "/again", f"www.{HOST}")[0] == 200
    first, second = origin.seen
    assert first.path == "/hello?x=1"
    assert first.headers["host"] == HOST
    assert first.headers["x-real-ip"] == "127.0.0.1"
    assert first.headers["x-forwarded-for"] == "127.0.0.1"
    assert first.headers["x-forwarded-proto"] == "http"
    assert second.headers["host"] == f"www.{HOST}"


def test_an_unknown_host_never_reaches_the_origin(edge: EdgeServer, layout: Layout, origin: Origin) -> None:
    apply(layout, [app(origin)])
    assert get(layout, "/", "other.example")[0] == 404
    assert get(layout, "/", "127.0.0.1")[0] == 404
    assert origin.seen == []


def test_attacks_get_403_never_reach_the_origin_and_show_in_traffic(edge: EdgeServer, layout: Layout,
                                                                    origin: Origin) -> None:
    apply(layout, [app(origin)])
    assert get(layout, "/clean")[0] == 200
    for attack in (SQLI, TRAVERSAL, XSS):
        assert get(layout, attack)[0] == 403, attack
    assert origin.paths() == ["/clean"]

    def all_logged() -> bool:
        seen = traffic(layout, 1)
        return seen.requests == 4 and len(seen.blocked) == 3

    wait_for(all_logged, "logged")
    seen = traffic(layout, 1)
    found = {blocked.uri: blocked for blocked in seen.blocked}
    assert set(found) == {SQLI, TRAVERSAL, XSS}
    assert found[SQLI].rule_id == 942100  # SQL injection (libinjection)
    assert str(found[TRAVERSAL].rule_id).startswith("930")  # local file inclusion
    assert str(found[XSS].rule_id).startswith("941")  # cross-site scripting
    assert all(blocked.client == "127.0.0.1" and blocked.message for blocked in seen.blocked)
    now = datetime.datetime.now(datetime.UTC)
    assert all(abs((now - blocked.at).total_seconds()) < 120 for blocked in seen.blocked)

    assert get(layout, "/later")[0] == 200
    wait_for(lambda: traffic(layout, 1, seen.offset).requests == 1, "counted from the offset")
    assert traffic(layout, 1, seen.offset).blocked == []


def test_with_the_waf_off_attacks_pass(edge: EdgeServer, layout: Layout, origin: Origin) -> None:
    apply(layout, [app(origin, waf=False)])
    for attack in (SQLI, TRAVERSAL, XSS):
        assert get(layout, attack)[0] == 200, attack
    assert origin.paths() == [SQLI, TRAVERSAL, XSS]
    wait_for(lambda: traffic(layout, 1).requests == 3, "counted")
    assert traffic(layout, 1).blocked == []


def test_an_excluded_rule_lets_its_attack_through(edge: EdgeServer, layout: Layout, origin: Origin) -> None:
    apply(layout, [app(origin, excluded_rules=(942100,))])
    assert get(layout, SQLI)[0] == 200
    assert get(layout, XSS)[0] == 403  # the other rules still hold
    assert origin.paths() == [SQLI]


def test_each_app_has_its_own_paranoia_level(edge: EdgeServer, layout: Layout, origin: Origin) -> None:
    apply(layout, [app(origin, paranoia=1), app(origin, app_id=2, hostnames=("strict.example",), paranoia=2)])
    odd = "/?x=1%20or%201"  # scored only from paranoia level 2
    assert get(layout, odd)[0] == 200
    assert get(layout, odd, "strict.example")[0] == 403


def test_the_acme_challenge_is_served_for_every_hostname_before_the_waf(edge: EdgeServer, layout: Layout,
                                                                        origin: Origin) -> None:
    apply(layout, [app(origin)])
    token = "tok_EN-123"
    (layout.challenge_dir / token).write_text(f"{token}.thumbprint")  # as an ACME client writes it, as root
    path = f"/.well-known/acme-challenge/{token}"
    assert get(layout, path) == (200, f"{token}.thumbprint")  # read by a www-data worker
    assert get(layout, path, f"www.{HOST}")[0] == 200
    assert get(layout, path, "not-yet-configured.example")[0] == 200
    assert get(layout, f"{path}?q=<script>alert(1)</script>")[0] == 200  # no WAF rule runs there
    assert get(layout, "/.well-known/acme-challenge/missing")[0] == 404
    assert origin.seen == []


def test_https_with_the_apps_certificate(edge: EdgeServer, layout: Layout, origin: Origin, pem: Pem) -> None:
    apply(layout, [app(origin, certificates=(Certificate(HOST, pem.chain, pem.key),))])
    assert get(layout, "/secure", https=True) == (200, "origin saw /secure")
    assert origin.seen[0].headers["x-forwarded-proto"] == "https"
    assert get(layout, XSS, https=True)[0] == 403
    with pytest.raises(ssl.SSLError):  # a name without a certificate gets no TLS at all
        get(layout, "/", "other.example", https=True)
    with pytest.raises(ssl.SSLError):
        get(layout, "/", f"www.{HOST}", https=True)


def test_tls_and_ipv6_origins(edge: EdgeServer, layout: Layout, pem: Pem) -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this machine")
    with serving_origin("127.0.0.1", pem) as tls_origin, serving_origin("::1") as v6_origin:
        apply(layout, [Site(1, (HOST,), "127.0.0.1", tls_origin.port, origin_tls=True, waf=True),
                       Site(2, ("six.example",), "::1", v6_origin.port, origin_tls=False, waf=True)])
        assert get(layout, "/over-tls") == (200, "origin saw /over-tls")
        assert get(layout, "/over-v6", "six.example") == (200, "origin saw /over-v6")
        assert v6_origin.seen[0].headers["x-real-ip"] == "127.0.0.1"


def test_a_configuration_nginx_rejects_leaves_the_edge_serving_the_previous_one(edge: EdgeServer, layout: Layout,
                                                                               origin: Origin) -> None:
    apply(layout, [app(origin)])
    in_place = os.readlink(layout.conf)
    broken = Site(2, ("new.example",), "127.0.0.1", origin.port, origin_tls=False, waf=True, certificates=(
        Certificate("new.example", layout.root / "missing" / "fullchain.pem", layout.root / "missing" / "key.pem"),))
    with pytest.raises(EdgeRejected) as rejected:
        apply(layout, [app(origin), broken])
    assert "certificate" in rejected.value.reason
    assert str(layout.root) not in rejected.value.reason
    assert os.readlink(layout.conf) == in_place
    assert [path.name for path in (layout.root / "config").iterdir()] == [Path(in_place).parent.name]
    assert get(layout, "/still")[0] == 200
    assert get(layout, "/", "new.example")[0] == 404
    apply(layout, [app(origin)])  # the same configuration again: nothing to do
    assert os.readlink(layout.conf) == in_place


def test_a_configuration_the_running_master_refuses_on_reload_is_rolled_back(edge: EdgeServer, layout: Layout,
                                                                            origin: Origin) -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this machine")
    apply(layout, [app(origin)])
    in_place = os.readlink(layout.conf)
    with socket.socket(socket.AF_INET6) as taken:  # `nginx -t` binds nothing: only the reload finds the port taken
        taken.bind(("::1", layout.http_port))
        taken.listen()
        with pytest.raises(EdgeRejected) as rejected:
            apply(replace(layout, listen_v6="::1"), [app(origin)])
    assert "Address already in use" in rejected.value.reason
    assert os.readlink(layout.conf) == in_place
    assert get(layout, "/still")[0] == 200


def test_the_per_client_rate_limit_answers_429(edge: EdgeServer, layout: Layout, origin: Origin) -> None:
    apply(replace(layout, rate_per_second=1, burst=0), [app(origin)])
    statuses = [get(layout, f"/{n}")[0] for n in range(5)]
    assert 429 in statuses
    assert len(origin.seen) < 5


def test_the_supervisor_restarts_nginx_after_it_is_killed(edge: EdgeServer, layout: Layout, origin: Origin) -> None:
    apply(layout, [app(origin)])
    master = edge.pid
    assert master is not None
    os.kill(master, signal.SIGKILL)
    wait_for(lambda: edge.restarts >= 1, "restarted")
    assert edge.pid not in (None, master)
    assert group_members(master) == []  # the old master's workers went with it
    assert get(layout, "/back")[0] == 200
    assert get(layout, XSS)[0] == 403


def test_stop_leaves_no_nginx_process(layout: Layout, origin: Origin) -> None:
    server = EdgeServer(layout)
    server.start()
    apply(layout, [app(origin)])
    master = server.pid
    assert master is not None
    workers = group_members(master)
    assert len(workers) >= 2  # the master and its workers, run as the worker user
    assert any(Path(f"/proc/{pid}").stat().st_uid != 0 for pid in workers) or WORKER_USER == "root"
    server.stop()
    assert group_members(master) == []
    assert not server.is_running()
    server.stop()  # idempotent
    with pytest.raises(OSError):
        get(layout, "/")
