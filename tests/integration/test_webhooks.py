"""Signed webhooks delivered by the worker to a real HTTP receiver on 127.0.0.1.

Every test runs on SQLite and PostgreSQL with its own worker (DBOS) and a receiver in a thread
that records each request and answers from a script. The operator setting that lets webhooks reach
loopback is on here, except where a test turns it off to see the refusal.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from sqlalchemy import select

from cloudlet.app import create_worker
from cloudlet.kit.errors import Invalid
from cloudlet.kit.secretbox import SecretBox
from cloudlet.surfaces.deps import Runtime
from cloudlet.webhooks import service as webhooks
from cloudlet.webhooks.models import DeliveryStatus, WebhookDelivery
from cloudlet.webhooks.schemas import WebhookDeliveryRead, WebhookEvent
from cloudlet.worker import Worker
from tests.integration.test_worker import wait_for

SECRET = "whsec-0123456789"
BACKOFF = 0.3


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    """Loopback allowed, quick retries, a sweep every second."""
    return {"webhook_allow_private": True, "webhook_backoff_seconds": BACKOFF, "webhook_max_attempts": 4,
            "webhook_timeout_seconds": 2, "webhook_sweep_schedule": "* * * * * *"}


@dataclass
class Received:
    """One request the receiver got."""

    path: str
    headers: dict[str, str]
    body: bytes
    at: float


@dataclass
class Receiver:
    """An HTTP server on 127.0.0.1 that records requests and answers with the next scripted status."""

    script: list[int | tuple[int, dict[str, str]]] = field(default_factory=list)
    requests: list[Received] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                receiver.requests.append(Received(self.path, {k.lower(): v for k, v in self.headers.items()},
                                                  body, time.monotonic()))
                answer = receiver.script.pop(0) if receiver.script else 200
                status, headers = answer if isinstance(answer, tuple) else (answer, {})
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        """Where to send webhooks."""
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks/cloudlet"

    def stop(self) -> None:
        """Stop serving."""
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A receiver answering 200 unless a test scripts other answers."""
    made = Receiver()
    made.start()
    try:
        yield made
    finally:
        made.stop()


@pytest.fixture
def worker(runtime: Runtime) -> Iterator[Worker]:
    """A worker on the test's database, not yet started; stopped after the test."""
    made = create_worker(runtime=runtime)
    try:
        yield made
    finally:
        made.stop(grace_seconds=0)


def enqueue(runtime: Runtime, url: str, *, secret: str | None = SECRET, reference: str = "inst-46",
            payload: Any = None) -> WebhookDeliveryRead:
    """Queue a deployment webhook in a transaction of its own (the delivery starts at its commit)."""
    notice = payload or webhooks.deployment_completed(
        vps_id=46, name="my-server.example.com", ip_address="74.81.40.146", deployment_time_seconds=180,
        at=datetime(2026, 1, 5, 15, 3, tzinfo=UTC))
    with runtime.db.session() as session:
        return webhooks.enqueue(session, runtime.settings, url=url, secret=secret,
                                event=WebhookEvent.DEPLOYMENT_COMPLETED, payload=notice, reference=reference)


def delivery(runtime: Runtime, delivery_id: int) -> WebhookDeliveryRead:
    """The delivery as the log has it now."""
    with runtime.db.session(write=False) as session:
        return webhooks.get_delivery(session, delivery_id)


def finished(runtime: Runtime, delivery_id: int) -> WebhookDeliveryRead | None:
    """The delivery once it is delivered or given up."""
    now = delivery(runtime, delivery_id)
    return now if now.status != DeliveryStatus.PENDING else None


def test_a_signed_deployment_webhook_arrives_once_with_the_reference_shape(
        runtime: Runtime, worker: Worker, receiver: Receiver) -> None:
    with worker:
        queued = enqueue(runtime, receiver.url)
        assert queued.status == DeliveryStatus.PENDING and queued.signed
        done = wait_for(lambda: finished(runtime, queued.id), "the delivery")
        time.sleep(2.5)  # two more sweeps: a delivered webhook is not sent again
    assert done.status == DeliveryStatus.DELIVERED
    assert done.attempts == 1 and done.last_status_code == 200 and done.last_error is None
    assert done.delivered_at is not None and done.next_attempt_at is None
    assert len(receiver.requests) == 1
    got = receiver.requests[0]
    assert got.path == "/hooks/cloudlet"
    assert got.headers["content-type"] == "application/json"
    assert got.headers["x-webhook-event"] == "vps.deployment.completed"
    assert got.headers["x-webhook-delivery"] == str(queued.id)
    assert abs(int(got.headers["x-webhook-timestamp"]) - time.time()) < 60
    # what a receiver following CyberPanel's docs computes over the raw body
    expected = "sha256=" + hmac.new(SECRET.encode(), got.body, hashlib.sha256).hexdigest()
    assert got.headers["x-webhook-signature"] == expected
    assert json.loads(got.body) == {
        "event": "vps.deployment.completed",
        "timestamp": "2026-01-05T15:03:00Z",
        "data": {"vps_id": 46, "name": "my-server.example.com", "status": "running",
                 "ip_address": "74.81.40.146", "deployment_time_seconds": 180},
    }


def test_without_a_secret_the_request_is_not_signed(runtime: Runtime, worker: Worker, receiver: Receiver) -> None:
    with worker:
        queued = enqueue(runtime, receiver.url, secret="")
        wait_for(lambda: finished(runtime, queued.id), "the delivery")
    assert not queued.signed
    assert len(receiver.requests) == 1
    assert "x-webhook-signature" not in receiver.requests[0].headers


def test_the_secret_is_stored_sealed_for_signing_and_never_read_back(runtime: Runtime) -> None:
    queued = enqueue(runtime, "https://hooks.example.com/x")  # no worker runs: nothing is sent
    with runtime.db.session(write=False) as session:
        log = webhooks.deliveries(session, "inst-46")
        stored = session.scalars(select(WebhookDelivery)).one()
    # the HMAC needs the secret itself, so it is kept sealed rather than as a digest
    assert stored.secret is not None and SECRET not in stored.secret
    assert SecretBox(runtime.settings.jwt_secret, "webhooks").open(stored.secret) == SECRET
    assert [d.id for d in log] == [queued.id]
    for shown in (queued, log[0]):
        assert SECRET not in shown.model_dump_json()
        assert "secret" not in shown.model_dump()


def test_a_5xx_and_a_429_are_retried_with_growing_waits_until_a_2xx(
        runtime: Runtime, worker: Worker, receiver: Receiver) -> None:
    receiver.script = [500, 429, 200]
    with worker:
        queued = enqueue(runtime, receiver.url)
        done = wait_for(lambda: finished(runtime, queued.id), "the delivery")
        time.sleep(1.5)
    assert done.status == DeliveryStatus.DELIVERED and done.attempts == 3 and done.last_status_code == 200
    assert len(receiver.requests) == 3
    first, second, third = receiver.requests
    assert first.body == second.body == third.body  # the same bytes, the same signature, every attempt
    assert {r.headers["x-webhook-delivery"] for r in receiver.requests} == {str(queued.id)}
    assert [r.headers["x-webhook-attempt"] for r in receiver.requests] == ["1", "2", "3"]
    assert second.at - first.at >= BACKOFF * 0.9
    assert third.at - second.at >= 2 * BACKOFF * 0.9  # exponential: the second wait is twice the first


def test_a_retry_after_longer_than_the_backoff_is_honoured(
        runtime: Runtime, worker: Worker, receiver: Receiver) -> None:
    receiver.script = [(429, {"Retry-After": "2"})]
    with worker:
        queued = enqueue(runtime, receiver.url)
        done = wait_for(lambda: finished(runtime, queued.id), "the delivery")
    assert done.status == DeliveryStatus.DELIVERED and done.attempts == 2
    first, second = receiver.requests
    assert second.at - first.at >= 2 * 0.95  # not the 0.3 s backoff


def test_a_4xx_is_given_up_at_once(runtime: Runtime, worker: Worker, receiver: Receiver) -> None:
    receiver.script = [410]
    with worker:
        queued = enqueue(runtime, receiver.url)
        done = wait_for(lambda: finished(runtime, queued.id), "the delivery to be given up")
        time.sleep(2 * BACKOFF + 1.5)  # longer than a retry would wait, and a sweep
    assert done.status == DeliveryStatus.FAILED
    assert done.attempts == 1 and done.last_status_code == 410 and done.last_error == "HTTP 410"
    assert done.delivered_at is None and done.next_attempt_at is None
    assert len(receiver.requests) == 1


def test_attempts_are_bounded(runtime: Runtime, worker: Worker, receiver: Receiver) -> None:
    receiver.script = [500] * 10
    with worker:
        queued = enqueue(runtime, receiver.url)
        done = wait_for(lambda: finished(runtime, queued.id), "the delivery to be given up")
        time.sleep(1.5)
    assert done.status == DeliveryStatus.FAILED and done.attempts == 4 and done.last_status_code == 500
    assert len(receiver.requests) == 4


def test_a_receiver_that_is_down_is_retried_then_given_up(runtime: Runtime, worker: Worker,
                                                          receiver: Receiver) -> None:
    url = receiver.url
    receiver.stop()  # nothing listens on that port any more: connection refused
    with worker:
        queued = enqueue(runtime, url)
        done = wait_for(lambda: finished(runtime, queued.id), "the delivery to be given up")
    assert done.status == DeliveryStatus.FAILED and done.attempts == 4
    assert done.last_status_code is None and done.last_error is not None
    assert done.last_error.startswith("ConnectError")


def test_delivery_survives_a_worker_restart_and_happens_once(
        runtime: Runtime, worker: Worker, receiver: Receiver) -> None:
    with worker:
        pass  # a worker ran here before, and is stopped now
    queued = enqueue(runtime, receiver.url)  # committed while no worker runs (as in a `cloudlet api` process)
    time.sleep(1.5)
    assert receiver.requests == [] and delivery(runtime, queued.id).status == DeliveryStatus.PENDING
    with create_worker(runtime=runtime):
        done = wait_for(lambda: finished(runtime, queued.id), "the delivery after the restart")
        time.sleep(2.5)  # more sweeps see it delivered and start nothing
    assert done.status == DeliveryStatus.DELIVERED and done.attempts == 1
    assert len(receiver.requests) == 1


def test_the_private_target_check_is_made_again_before_sending(
        runtime: Runtime, worker: Worker, receiver: Receiver) -> None:
    queued = enqueue(runtime, receiver.url)  # allowed when queued...
    runtime.settings.webhook_allow_private = False  # ...but not any more when the worker sends it
    with worker:
        done = wait_for(lambda: finished(runtime, queued.id), "the refusal")
    assert done.status == DeliveryStatus.FAILED and done.attempts == 1 and done.last_status_code is None
    assert done.last_error is not None and "loopback" in done.last_error and done.last_error.startswith("refused")
    assert receiver.requests == []


def test_a_name_that_resolves_to_an_internal_address_is_refused_after_dns(
        runtime: Runtime, worker: Worker, receiver: Receiver) -> None:
    name = socket.gethostname()  # /etc/hosts maps it to loopback (or the host's private address)
    port = receiver.url.split(":")[2].split("/")[0]
    addresses = {info[4][0] for info in socket.getaddrinfo(name, int(port), type=socket.SOCK_STREAM)}
    if any(ipaddress.ip_address(str(a)).is_global for a in addresses):
        pytest.skip(f"{name} resolves to a public address here")
    runtime.settings.webhook_allow_private = False
    queued = enqueue(runtime, f"http://{name}:{port}/hooks/cloudlet")  # no DNS when queued: accepted
    with worker:
        done = wait_for(lambda: finished(runtime, queued.id), "the refusal")
    assert done.status == DeliveryStatus.FAILED and done.attempts == 1
    assert done.last_error is not None and done.last_error.startswith(f"refused: {name} resolves to a")
    assert receiver.requests == []  # had it connected, the receiver on 127.0.0.1 would have answered


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:9/hook", "http://127.8.9.10/", "http://10.1.2.3/hook", "http://192.168.1.1/",
    "http://172.16.0.5/", "https://169.254.169.254/latest/meta-data/", "http://[::1]:8080/",
    "http://[fe80::1]/", "http://[fc00::1]/", "http://[::ffff:127.0.0.1]/", "http://0.0.0.0/",
    "http://224.0.0.1/", "http://2130706433/", "http://0x7f.1/", "http://localhost:8080/hook",
    "http://api.localhost/",
])
def test_internal_targets_are_refused_when_queued(runtime: Runtime, receiver: Receiver, url: str) -> None:
    runtime.settings.webhook_allow_private = False
    with pytest.raises(Invalid) as refused, runtime.db.session() as session:
        webhooks.enqueue(session, runtime.settings, url=url, secret=None, event=WebhookEvent.DEPLOYMENT_FAILED,
                         payload={"event": "vps.deployment.failed"}, reference="inst-1")
    assert refused.value.field == "webhook_url"
    assert "may not point at" in refused.value.message
    with runtime.db.session(write=False) as session:
        assert session.scalars(select(WebhookDelivery)).all() == []


@pytest.mark.parametrize(("url", "message"), [
    ("ftp://files.example.com/hook", "must start with http:// or https://"),
    ("file:///etc/passwd", "must start with http:// or https://"),
    ("not a url", "must start with http:// or https://"),
    ("http:///nohost", "has no host"),
    ("https://example.com/" + "a" * 2100, "at most 2048 characters"),
])
def test_a_bad_url_is_refused_with_a_clear_message(runtime: Runtime, url: str, message: str) -> None:
    with pytest.raises(Invalid, match=message) as refused:
        webhooks.check_url(runtime.settings, url)
    assert refused.value.field == "webhook_url"


def test_public_targets_pass_and_the_operator_may_allow_private_ones(runtime: Runtime) -> None:
    runtime.settings.webhook_allow_private = False
    for url in ("https://hooks.example.com/cloudlet", "http://8.8.8.8:8080/x", "https://[2606:4700::1111]/"):
        assert webhooks.check_url(runtime.settings, url) == url
    runtime.settings.webhook_allow_private = True
    assert webhooks.check_url(runtime.settings, "http://10.0.0.7/hook") == "http://10.0.0.7/hook"
    with pytest.raises(Invalid, match="http:// or https://"):
        webhooks.check_url(runtime.settings, "gopher://10.0.0.7/")  # the scheme rule always holds


def test_a_rolled_back_enqueue_sends_nothing(runtime: Runtime, worker: Worker, receiver: Receiver) -> None:
    with worker:
        with pytest.raises(RuntimeError), runtime.db.session() as session:
            webhooks.enqueue(session, runtime.settings, url=receiver.url, secret=None,
                             event=WebhookEvent.DEPLOYMENT_COMPLETED, payload={"x": 1}, reference="gone")
            raise RuntimeError("the caller's transaction fails")
        time.sleep(2)
    assert receiver.requests == []
    with runtime.db.session(write=False) as session:
        assert webhooks.deliveries(session, "gone") == []


def test_the_failed_deployment_payload_has_the_same_shape() -> None:
    notice = webhooks.deployment_failed(vps_id=7, name="web-1", ip_address=None, deployment_time_seconds=42,
                                        at=datetime(2026, 3, 1, 8, 0, 5, 123456, tzinfo=UTC))
    assert json.loads(notice.model_dump_json()) == {
        "event": "vps.deployment.failed", "timestamp": "2026-03-01T08:00:05Z",
        "data": {"vps_id": 7, "name": "web-1", "status": "failed", "ip_address": None,
                 "deployment_time_seconds": 42},
    }
