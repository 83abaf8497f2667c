"""A real ACME server for tests: Debian's pebble, resolving names through pebble-challtestsrv, on loopback.

Debian's pebble package ships the two binaries but not upstream's test/certs (the "+ds" tarball drops
them), so this helper makes its own throw-away CA and a 127.0.0.1/localhost certificate for pebble's
HTTPS; `ca_bundle` is that CA. The root that signs *issued* certificates is another one, made afresh by
pebble at every start and served by its management interface (`issuing_root_pem()`).

    with AcmeServer(http_port=8080) as ca:
        issue(ca.directory_url, "app.example.test", ..., ca_bundle=ca.ca_bundle)

Every name resolves to 127.0.0.1, so HTTP-01 validation of any hostname reaches
http://127.0.0.1:<http_port>/.well-known/acme-challenge/<token>.
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import json
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

PEBBLE = Path("/usr/bin/pebble")
CHALLTESTSRV = Path("/usr/bin/pebble-challtestsrv")
START_SECONDS = 30.0  # pebble generates its issuing hierarchy at start: quick, but a busy 2-core box is slow
STOP_SECONDS = 10.0
CALL_SECONDS = 5.0


def available() -> bool:
    """Whether Debian's pebble and pebble-challtestsrv are installed."""
    return PEBBLE.is_file() and CHALLTESTSRV.is_file()


def free_port(*, udp_too: bool = False) -> int:
    """A loopback port nothing listens on right now (TCP, and UDP as well when asked)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind(("127.0.0.1", 0))
            port = int(tcp.getsockname()[1])
            if not udp_too:
                return port
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
    raise RuntimeError("no free loopback port for both TCP and UDP")


class AcmeServer:
    """pebble plus pebble-challtestsrv as its DNS server, started on free loopback ports; a context manager."""

    def __init__(self, http_port: int, *, authz_reuse: int = 0, workdir: Path | None = None) -> None:
        # authz_reuse=0: every order needs its own challenge, so a test of a failing challenge cannot be
        # passed by an authorization an earlier test left valid (pebble's default reuses half of them).
        self.http_port = http_port
        self.authz_reuse = authz_reuse
        self._own_workdir = workdir is None
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="pebble-"))
        self.acme_port = free_port()
        self.management_port = free_port()
        self.dns_port = free_port(udp_too=True)
        self.dns_management_port = free_port()
        self.ca_bundle = self.workdir / "pebble-https-ca.pem"
        self._processes: dict[str, subprocess.Popen[bytes]] = {}
        self._logs: list[Path] = []

    @property
    def directory_url(self) -> str:
        """The ACME directory clients start from."""
        return f"https://127.0.0.1:{self.acme_port}/dir"

    @property
    def management_url(self) -> str:
        """pebble's management interface (roots, intermediates, certificate status)."""
        return f"https://127.0.0.1:{self.management_port}"

    def __enter__(self) -> AcmeServer:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.stop()

    def start(self) -> None:
        """Write the configuration, start both processes and wait until the directory answers."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        cert, key = self._write_https_certificates()
        config = self.workdir / "pebble-config.json"
        config.write_text(json.dumps({"pebble": {
            "listenAddress": f"127.0.0.1:{self.acme_port}",
            "managementListenAddress": f"127.0.0.1:{self.management_port}",
            "certificate": str(cert),
            "privateKey": str(key),
            "httpPort": self.http_port,
            "tlsPort": free_port(),  # TLS-ALPN-01 target; nothing here uses it but pebble wants one
            "ocspResponderURL": "",
            "externalAccountBindingRequired": False,
        }}))
        # Empty addresses switch off challtestsrv's own challenge responders: it is only our DNS.
        # No AAAA answers, so the VA dials 127.0.0.1 rather than ::1 where nothing listens.
        self._spawn("challtestsrv", [str(CHALLTESTSRV), "-dns01", f"127.0.0.1:{self.dns_port}",
                                     "-management", f"127.0.0.1:{self.dns_management_port}",
                                     "-http01", "", "-https01", "", "-tlsalpn01", "",
                                     "-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""], {})
        self._spawn("pebble", [str(PEBBLE), "-config", str(config), "-dnsserver", f"127.0.0.1:{self.dns_port}"],
                    {"PEBBLE_VA_NOSLEEP": "1", "PEBBLE_WFE_NONCEREJECT": "0",
                     "PEBBLE_AUTHZREUSE": str(self.authz_reuse)})
        self._wait_for_directory()

    def stop(self) -> None:
        """Stop both processes (terminate, then kill past a deadline) and remove a workdir we made."""
        for process in reversed(self._processes.values()):
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=STOP_SECONDS)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout=STOP_SECONDS)
        self._processes.clear()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def point(self, hostname: str, address: str) -> None:
        """Have the DNS answer hostname with address (a loopback one) rather than 127.0.0.1."""
        self._dns("add-a", {"host": hostname.rstrip(".") + ".", "addresses": [address]})

    def unpoint(self, hostname: str) -> None:
        """Have the DNS answer hostname with 127.0.0.1 again."""
        self._dns("clear-a", {"host": hostname.rstrip(".") + "."})

    def _dns(self, verb: str, body: dict[str, object]) -> None:
        request = urllib.request.Request(f"http://127.0.0.1:{self.dns_management_port}/{verb}",
                                         data=json.dumps(body).encode(), method="POST")
        with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310  # our own loopback server
            answer.read()

    def issuing_root_pem(self) -> bytes:
        """The root that signs the certificates this pebble issues (new at every start)."""
        with urllib.request.urlopen(f"{self.management_url}/roots/0", timeout=CALL_SECONDS,  # noqa: S310
                                    context=self.ssl_context()) as reply:
            return bytes(reply.read())

    def ssl_context(self) -> ssl.SSLContext:
        """A client TLS context that trusts pebble's HTTPS certificate."""
        return ssl.create_default_context(cafile=str(self.ca_bundle))

    def logs(self) -> str:
        """What both processes printed so far, for a failing test's message."""
        return "\n".join(f"--- {path.name}\n{path.read_text(errors='replace')}" for path in self._logs
                         if path.exists())

    def _spawn(self, name: str, argv: list[str], extra_env: dict[str, str]) -> None:
        log = self.workdir / f"{name}.log"
        self._logs.append(log)
        with log.open("wb") as out:
            self._processes[name] = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT,
                                                     stdin=subprocess.DEVNULL, cwd=self.workdir,
                                                     env={**os.environ, **extra_env})

    def _wait_for_directory(self) -> None:
        deadline = time.monotonic() + START_SECONDS
        context = self.ssl_context()
        last: Exception | None = None
        while time.monotonic() < deadline:
            for name, process in self._processes.items():
                if process.poll() is not None:
                    raise RuntimeError(f"{name} exited with {process.returncode}\n{self.logs()}")
            try:
                with urllib.request.urlopen(self.directory_url, timeout=CALL_SECONDS,  # noqa: S310
                                            context=context) as reply:
                    if "newOrder" in json.loads(reply.read()):
                        return
            except (OSError, urllib.error.URLError, ValueError) as error:
                last = error
            # Waiting on the process doubles as the pause between polls and notices an early exit.
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._processes["pebble"].wait(timeout=0.1)
        raise TimeoutError(f"pebble's directory did not answer within {START_SECONDS}s ({last})\n{self.logs()}")

    def _write_https_certificates(self) -> tuple[Path, Path]:
        now = datetime.datetime.now(datetime.UTC)
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "cloudlet test pebble https CA")])
        ca_cert = (
            x509.CertificateBuilder()
            .subject_name(ca_name).issuer_name(ca_name)
            .public_key(ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False,
                                         encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
            .issuer_name(ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([
                x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        self.ca_bundle.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
        cert_path, key_path = self.workdir / "pebble-https-cert.pem", self.workdir / "pebble-https-key.pem"
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_path.touch(mode=0o600)
        key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
        return cert_path, key_path
