"""The AI agent's own cost, the model's time left out: `python -m bench.agent [--conversations 20] [--steps 5]
[--chats 200] [--seconds 60] [--db sqlite,postgresql]`.

For each database (a SQLite file in a temporary directory; a fresh PostgreSQL database on
CLOUDLET_BENCH_POSTGRES_URL as in bench.instances_list, skipped with a note when it does not answer) it migrates,
loads the default catalogue, registers an image with a guest agent, a FakeDriver node with one running guest and
its server row, and a customer with a `*` token and an agent pool of a billion cents. The model is
tests/fake_llm.py's FakeModel on loopback (the real chat-completions protocol). Chats go through the real app
(FastAPI's TestClient: every middleware, the token check, the request's transaction, then the run after it), and
every model.complete call is timed where the loop makes it, so the model's own time (its HTTP client, the
loopback round trip, the fake's answer) is subtracted exactly:

(a) overhead per tool step: `--conversations` chats of `--steps` shell calls each (`hostname`, run by the
    FakeDriver's guest agent), then an answer. A tool step is the time from one model answer to the next model
    call: the assistant step recorded and charged, the tool run, its result recorded and charged, the transcript
    read back for the model. The rest of a chat (the request, the customer's message, the final charge, the
    transcript in the answer) is printed apart, and so is the model call the figures leave out (the shared HTTP
    client's round trip on loopback and the fake's answer).
(b) conversations stored per second: `--chats` new conversations of one answer each, one after another, beside
    the same rate with the model's time taken out.
(c) a tool call through a real guest agent needs a booted Debian guest (over a minute under TCG), so it is not
    timed here: tests/e2e/test_agent_libvirt.py runs tool calls on one, and each tool message's duration_ms in
    its transcript is that latency.

Each part stops at `--seconds` whatever its count. Nothing but 127.0.0.1 is contacted.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from unittest import mock

from fastapi.testclient import TestClient
from tests.fake_llm import Call, FakeModel, Say

from bench.api_me import SECRET_KEY, UNLIMITED
from bench.instances import percentile
from bench.instances_list import database
from bench.metrics import make_image
from cloudlet import catalogue_file
from cloudlet.agent import model
from cloudlet.app import build_runtime, create_app
from cloudlet.auth import service as auth
from cloudlet.catalog import service as catalog
from cloudlet.config import Settings
from cloudlet.drivers.base import GuestSpec
from cloudlet.drivers.fake import FakeDriver
from cloudlet.images import service as images
from cloudlet.images.models import ImageCapability, ImageSource
from cloudlet.images.schemas import ImageRegister
from cloudlet.instances.models import Instance, InstanceStatus
from cloudlet.kit import logging as cloudlet_logging
from cloudlet.kit import migrate
from cloudlet.nodes import service as nodes
from cloudlet.nodes.schemas import NodeCreate, Resources
from cloudlet.surfaces.deps import Runtime
from cloudlet.tokens import service as tokens
from cloudlet.tokens.schemas import TokenCreate

NODE_URI = "qemu+ssh://hv1.bench/system"
GUEST = "bench-agent-1"
POOL_CENTS = 1_000_000_000  # never runs dry here
# FakeModel's steps use 10 input and 5 output tokens: at these prices each model step and each tool call makes a
# whole cent due, so every step of the loop writes its debit to the ledger (the most a step does)
GIB = 1024**3


def seed(runtime: Runtime, driver: FakeDriver, image: Path) -> tuple[str, str]:
    """The catalogue, an image with a guest agent, a node with one running guest and its server, and a customer
    with a `*` token; the token and the server's id."""
    driver.import_image("tiny", image)
    driver.create_guest(GuestSpec(name=GUEST, image="tiny", vcpus=1, memory_mib=1024, disk_gib=25,
                                  hostname="agent.example.com"))
    runtime.drivers.use(lambda uri: driver)
    with runtime.db.session() as session:
        catalogue_file.seed_default(session)
        images.register_image(session, ImageRegister(
            name="tiny", source=ImageSource.IMPORTED, volume="tiny", virtual_size_bytes=GIB, os_family="debian",
            capabilities=frozenset({ImageCapability.GUEST_AGENT})))
        plan = catalog.get_plan(session, "scout-1")
        region = next(r for r in catalog.list_regions(session) if r.code in plan.regions)
        node = nodes.create_node(session, NodeCreate(name="hv1", uri=NODE_URI, region=region.code,
                                                     capacity=Resources(vcpu=100, memory_mib=10**6, disk_gib=10**4)))
        user = auth.create_user(session, runtime.settings, email="bench@example.com", password="bench-password-123")
        minted = tokens.mint(session, user_id=user.id, project_id=None, data=TokenCreate(name="bench"),
                             caller_abilities=["*"], default_per_minute=UNLIMITED, default_per_hour=UNLIMITED)
        assert user.personal_project_id is not None  # every user is made with a personal project
        server = Instance(uuid=str(uuid.uuid4()), project_id=user.personal_project_id, created_by=user.id,
                          name="agent", hostname="agent.example.com", plan_id=plan.id, region_id=region.id,
                          image="tiny", billing_cycle="monthly", vcpus=1, memory_mib=1024, disk_gib=25,
                          guest_name=GUEST, node_id=node.id, ssh_keys=[], status=InstanceStatus.RUNNING)
        session.add(server)
    return minted.plaintext, server.uuid


@contextmanager
def timed_model() -> Iterator[list[tuple[float, float]]]:
    """Every model.complete call the loop makes, as (began, ended) perf_counter times, in order."""
    spans: list[tuple[float, float]] = []
    complete = model.complete

    def timed(*args: Any, **kwargs: Any) -> model.Reply:
        began = time.perf_counter()
        try:
            return complete(*args, **kwargs)
        finally:
            spans.append((began, time.perf_counter()))

    with mock.patch.object(model, "complete", timed):
        yield spans


def ms(values: list[float]) -> str:
    """p50 and p95 of seconds, in milliseconds."""
    return f"p50 {percentile(values, 50) * 1000:6.1f} ms  p95 {percentile(values, 95) * 1000:6.1f} ms"


def chats(send: Callable[[], None], spans: list[tuple[float, float]], count: int,
          seconds: float) -> list[tuple[float, float, list[tuple[float, float]]]]:
    """Up to count chats, one after another, stopping at seconds: each one's start, end and model calls."""
    done: list[tuple[float, float, list[tuple[float, float]]]] = []
    deadline = time.perf_counter() + seconds
    while len(done) < count and time.perf_counter() < deadline:
        del spans[:]
        began = time.perf_counter()
        send()
        done.append((began, time.perf_counter(), list(spans)))
    return done


def run(kind: str, conversations: int, steps: int, stored: int, seconds: float) -> None:
    """Seed one database and print its figures."""
    with tempfile.TemporaryDirectory() as tmp, database(kind, Path(tmp)) as url, FakeModel() as llm:
        if url == "absent":
            return
        settings = Settings(_env_file=None, data_dir=Path(tmp), database_url=url, secret_key=SECRET_KEY,
                            argon2_time_cost=1, argon2_memory_kib=1024, log_level="warning",
                            agent_base_url=llm.base_url, agent_api_key=llm.key, agent_model="fake-model",
                            webhook_allow_private=True, agent_trial_credit_cents=POOL_CENTS, agent_retries=0,
                            agent_price_input_per_1k_cents=100, agent_price_output_per_1k_cents=200,
                            agent_price_tool_call_cents=1,
                            agent_max_steps=max(8, steps + 1))
        runtime = build_runtime(settings)
        try:
            migrate.upgrade(runtime.db.engine)
            token, server = seed(runtime, FakeDriver(), make_image(Path(tmp)))
            headers = {"Authorization": f"Bearer {token}"}
            with TestClient(create_app(runtime=runtime)) as client, timed_model() as spans:
                def chat(script: list[Call | Say]) -> Callable[[], None]:
                    def send() -> None:
                        llm.script = list(script)
                        answer = client.post(f"/api/instances/{server}/agent/chat", headers=headers,
                                             json={"message": "Check the host name"})
                        if answer.status_code != 200:
                            raise RuntimeError(f"the chat failed: {answer.status_code} {answer.text}")
                    return send

                tooled = chat([*(Call("shell", {"command": "hostname"}) for _ in range(steps)), Say("Done.")])
                tooled()  # a first chat to warm up: connections, caches
                runs = chats(tooled, spans, conversations, seconds)
                gaps = [nxt[0] - prev[1] for _, _, calls in runs for prev, nxt in itertools.pairwise(calls)]
                rest = [(calls[0][0] - began) + (ended - calls[-1][1]) for began, ended, calls in runs]
                model_calls = [ended - began for _, _, calls in runs for began, ended in calls]
                print(f"  {kind:<10} (a) {len(runs)} chats of {steps} tool steps, per tool step: {ms(gaps)}")
                print(f"  {kind:<10}     the rest of a chat (request, message, last charge, answer): {ms(rest)}")
                print(f"  {kind:<10}     the model call, left out of both: {ms(model_calls)}", flush=True)

                answered = chat([Say("Nothing to do.")])
                runs = chats(answered, spans, stored, seconds)
                wall = sum(ended - began for began, ended, _ in runs)
                own = wall - sum(e - b for _, _, calls in runs for b, e in calls)
                print(f"  {kind:<10} (b) {len(runs)} conversations of one answer, one after another: "
                      f"{len(runs) / wall:6.1f}/s  ({len(runs) / own:6.1f}/s without the model's time)", flush=True)
        finally:
            runtime.mailer.close()
            runtime.db.dispose()


def main(argv: list[str] | None = None) -> None:
    """Parse the options and run each database."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--conversations", type=int, default=20)
    parser.add_argument("--steps", type=int, default=5, help="tool calls in each chat of (a), at most 49")
    parser.add_argument("--chats", type=int, default=200, help="conversations of (b)")
    parser.add_argument("--seconds", type=float, default=60.0, help="bound of each part's time")
    parser.add_argument("--db", default="sqlite,postgresql")
    options = parser.parse_args(argv if argv is not None else [])
    cloudlet_logging.configure("warning")  # a line per request would cost more than some steps
    for kind in options.db.split(","):
        run(kind.strip(), options.conversations, min(options.steps, 49), options.chats, options.seconds)
    print("  (c) a tool call through a real guest agent: not timed here (it needs a booted Debian guest); "
          "tests/e2e/test_agent_libvirt.py makes some, and each tool message's duration_ms is that latency")

if __name__ == "__main__":
    main(sys.argv[1:])
