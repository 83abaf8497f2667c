"""HTTP hardening seen from outside a real server process (uvicorn as `cloudlet api` runs it, on loopback).

What a log holds after an unhandled error, whose address a spoofed X-Forwarded-For can claim, which
headers leave the server, and how a 50 MB body (declared or chunked) is refused before it is read.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
from sqlalchemy import select

from cloudlet.audit.models import AuditEntry
from cloudlet.cli.main import uvicorn_options
from cloudlet.surfaces.deps import Runtime
from tests.hardening_server import CARD_NUMBER
from tests.helpers import free_port, make_user, mint_token

ROOT = Path(__file__).resolve().parents[2]
SMTP_PASSWORD = "smtp-password-that-must-not-leak"
SECRET_KEY = "signing-key-that-must-not-leak-0123456789abcdef"
SPOOFED = "203.0.113.9"
FIFTY_MB = 50 * 1024 * 1024
MAX_LOG_BYTES = 40_000  # one failed request, however long its error, leaves at most this much


@dataclass
class Served:
    """A running server process and where its log goes."""

    url: str
    port: int
    log: Path
    process: subprocess.Popen[bytes]

    def stop(self) -> str:
        """End the process and return everything it logged."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        return self.log.read_text(errors="replace")


@contextmanager
def served(runtime: Runtime, tmp_path: Path) -> Iterator[Served]:
    """A real API server on a free loopback port, on the test's database, with secrets in its settings."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLOUDLET_")}
    env.update({
        "CLOUDLET_DATA_DIR": str(runtime.settings.data_dir),
        "CLOUDLET_DATABASE_URL": runtime.settings.effective_database_url,
        "CLOUDLET_SECRET_KEY": runtime.settings.jwt_secret,
        "CLOUDLET_SMTP_PASSWORD": SMTP_PASSWORD,
        "CLOUDLET_METRICS_TOKEN": "metrics-token-that-must-not-leak",
        "CLOUDLET_ARGON2_TIME_COST": "1", "CLOUDLET_ARGON2_MEMORY_KIB": "1024",
        "CLOUDLET_TRUSTED_PROXIES": "[]",
    })
    log = tmp_path / f"server-{port}.log"
    with log.open("wb") as sink:
        process = subprocess.Popen([sys.executable, "-m", "tests.hardening_server", str(port)], cwd=ROOT, env=env,
                                   stdout=sink, stderr=subprocess.STDOUT)
    server = Served(f"http://127.0.0.1:{port}", port, log, process)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, f"the server exited:\n{log.read_text()}"
            try:
                if httpx.get(f"{server.url}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, f"the server did not start:\n{log.read_text()}"
            time.sleep(0.2)
        yield server
    finally:
        server.stop()


def test_the_cli_serves_without_proxy_headers_or_a_server_header(runtime: Runtime) -> None:
    options = uvicorn_options(runtime.settings)
    assert options["proxy_headers"] is False and options["server_header"] is False
    assert options["log_config"] is None  # uvicorn's own records go through the bounded formatter


def test_an_unhandled_error_logs_no_locals_no_credentials_and_a_bounded_traceback(runtime: Runtime,
                                                                                  tmp_path: Path) -> None:
    jane = make_user(runtime, "jane@example.com")
    with served(runtime, tmp_path) as server:
        answer = httpx.get(f"{server.url}/api/boom", headers={"Authorization": f"Bearer {jane.token}"}, timeout=30)
        assert answer.status_code == 500
        assert answer.json()["message"] == "An unexpected error occurred; it has been logged."
        assert answer.headers["X-Content-Type-Options"] == "nosniff"  # a 500 is an answer like any other
        time.sleep(0.5)  # the log lines of the failure are written after the answer
        log = server.stop()
    assert "unhandled error" in log and "RuntimeError: the handler failed" in log  # still useful to an operator
    assert "characters cut" in log  # the 200,000-character message was shortened
    for leaked in (CARD_NUMBER, jane.token, SMTP_PASSWORD, SECRET_KEY, "metrics-token-that-must-not-leak"):
        assert leaked not in log
    assert "Settings(" not in log and "locals" not in log.lower()
    assert len(log.encode()) < MAX_LOG_BYTES, len(log.encode())


def test_a_spoofed_forwarded_for_changes_neither_the_allow_list_nor_the_audit(runtime: Runtime,
                                                                             tmp_path: Path) -> None:
    jane = make_user(runtime, "jane@example.com")
    fenced = mint_token(runtime, jane, "*", ip_allowlist=[f"{SPOOFED}/32"])
    spoof = {"X-Forwarded-For": SPOOFED, "X-Real-IP": SPOOFED, "Forwarded": f"for={SPOOFED}"}
    with served(runtime, tmp_path) as server:
        refused = httpx.get(f"{server.url}/api/me", headers={"Authorization": f"Bearer {fenced}", **spoof},
                            timeout=30)
        assert refused.status_code == 403 and refused.json()["code"] == "IP_NOT_ALLOWED"
        assert "127.0.0.1" in refused.json()["message"]
        login = httpx.post(f"{server.url}/v1/auth/login", headers=spoof, timeout=30,
                           json={"email": "jane@example.com", "password": "not-her-password"})
        assert login.status_code == 401
        assert "server" not in login.headers  # no `server: uvicorn`
        assert login.headers["X-Frame-Options"] == "DENY"
    with runtime.db.session(write=False) as session:
        entry = session.scalars(select(AuditEntry).where(AuditEntry.path == "/v1/auth/login")).one()
    assert entry.ip_address == "127.0.0.1"


def _raw_exchange(port: int, head: bytes, body_chunks: Iterator[bytes]) -> tuple[int, dict[str, str], bytes, int]:
    """Send a request the way a large upload does (headers, then the body from another thread) and read
    the answer while the body is still going out: (status, headers, body, bytes of the body sent)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sent = 0

    def upload() -> None:
        nonlocal sent
        try:
            sock.sendall(head)
            for chunk in body_chunks:
                sock.sendall(chunk)
                sent += len(chunk)
        except OSError:
            pass  # the server answered and closed the connection: the rest was never wanted

    uploader = threading.Thread(target=upload, daemon=True)
    uploader.start()
    received = b""
    with sock:
        while b"\r\n\r\n" not in received:
            data = sock.recv(65536)
            assert data, "the server closed the connection without an answer"
            received += data
        raw_head, _, body = received.partition(b"\r\n\r\n")
        lines = raw_head.decode("latin-1").split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
        length = int(headers.get("content-length", "0"))
        while len(body) < length:
            data = sock.recv(65536)
            if not data:
                break
            body += data
        with contextlib.suppress(OSError):  # the server, done with the request, may have reset the connection
            sock.shutdown(socket.SHUT_RDWR)
    uploader.join(timeout=30)
    return int(lines[0].split()[1]), headers, body, sent


def _fifty_mb(chunk_size: int = 256 * 1024) -> Iterator[bytes]:
    piece = b"[" + b"1," * (chunk_size // 2 - 1) + b"1]"
    for _ in range(FIFTY_MB // len(piece)):
        yield piece


def _chunked(chunks: Iterator[bytes]) -> Iterator[bytes]:
    for chunk in chunks:
        yield f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
    yield b"0\r\n\r\n"


def test_a_50_mb_body_is_refused_with_413_before_it_is_read(runtime: Runtime, tmp_path: Path) -> None:
    with served(runtime, tmp_path) as server:
        head = (f"POST /v1/auth/login HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {FIFTY_MB}\r\n\r\n").encode()
        started = time.monotonic()
        status, headers, body, sent = _raw_exchange(server.port, head, _fifty_mb())
        assert status == 413 and headers["content-type"] == "application/json"
        problem = json.loads(body)
        assert problem == {"error": "The request body is larger than the 1048576 bytes this server accepts."}
        assert sent < FIFTY_MB  # the server did not wait for (let alone parse) the whole body
        assert time.monotonic() - started < 20

        # Chunked, so no length to judge by: refused once the bytes that arrived pass the cap.
        head = (f"POST /api/v1/vps/create HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
                "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n").encode()
        status, headers, body, sent = _raw_exchange(server.port, head, _chunked(_fifty_mb()))
        assert status == 413
        problem = json.loads(body)
        assert problem["success"] is False and problem["error_code"] == "PAYLOAD_TOO_LARGE"  # CyberPanel's
        assert sent < FIFTY_MB

        # and the server is as good as before
        assert httpx.get(f"{server.url}/health", timeout=10).status_code == 200
