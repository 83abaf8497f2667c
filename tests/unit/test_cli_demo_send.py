"""`cloudlet demo` waits out a 429 for the Retry-After the server asked for, as a polite API client does."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from cloudlet.cli.demo import send


class Scripted(ThreadingHTTPServer):
    """Answers each request with the next (status, Retry-After) of its script; records when each arrived."""

    def __init__(self, script: list[tuple[int, str | None]]) -> None:
        self.script, self.arrivals = list(script), list[float]()
        super().__init__(("127.0.0.1", 0), Handler)


class Handler(BaseHTTPRequestHandler):
    server: Scripted

    def do_GET(self) -> None:
        self.server.arrivals.append(time.monotonic())
        status, retry_after = self.server.script.pop(0)
        self.send_response(status)
        if retry_after is not None:
            self.send_header("Retry-After", retry_after)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def serve() -> Iterator[list[Scripted]]:
    servers: list[Scripted] = []
    yield servers
    for server in servers:
        server.shutdown()
        server.server_close()


def client_of(servers: list[Scripted], script: list[tuple[int, str | None]]) -> tuple[Scripted, httpx.Client]:
    server = Scripted(script)
    servers.append(server)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, httpx.Client(base_url=f"http://127.0.0.1:{server.server_port}", timeout=10)


def test_a_429_is_retried_after_the_seconds_asked(serve: list[Scripted]) -> None:
    server, client = client_of(serve, [(429, "1"), (200, None)])
    with client:
        assert send(client, "GET", "/api/instances/x/actions").status_code == 200
    first, second = server.arrivals
    assert second - first >= 1.0


@pytest.mark.parametrize("retry_after", [None, "soon", "3600"])
def test_a_429_without_a_usable_wait_is_returned(serve: list[Scripted], retry_after: str | None) -> None:
    server, client = client_of(serve, [(429, retry_after)])
    with client:
        assert send(client, "GET", "/x").status_code == 429
    assert len(server.arrivals) == 1


def test_a_second_429_is_returned_not_retried_forever(serve: list[Scripted]) -> None:
    server, client = client_of(serve, [(429, "0"), (429, "0")])
    with client:
        assert send(client, "GET", "/x").status_code == 429
    assert len(server.arrivals) == 2
