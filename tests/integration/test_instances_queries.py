"""Reading servers costs a constant number of SQL statements on every surface, whatever the list's length;
a locked server says which action holds it; a deployment is read from one snapshot.

Servers are made through the instances service on a FakeDriver node with no worker running, so each stays
held by its create action until the test finishes some of them itself: both kinds are in every list.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from cloudlet.actions import service as action_engine
from cloudlet.auth.models import User
from cloudlet.drivers.fake import FakeDriver
from cloudlet.instances import build
from cloudlet.instances.schemas import CREATE_TASKS, CreatedInstance, InstanceCreate
from cloudlet.kit import clock
from cloudlet.metrics.models import InstanceCounters
from cloudlet.nodes.schemas import Resources
from cloudlet.surfaces.deps import Runtime
from tests.cloud import TEMPLATE, credit, prepare_cloud
from tests.conftest import Api
from tests.helpers import Person, make_user

# every surface's list of servers, and how to find the servers in its answer
LISTS: dict[str, tuple[str, Callable[[Any], list[Any]]]] = {
    "primary": ("/api/instances", lambda body: body),
    "cyberpanel": ("/api/v1/vps?limit=100", lambda body: body["data"]["instances"]),
    "wayscloud": ("/v1/vps", lambda body: body["instances"]),
    "shardlyn": ("/v1/instances", lambda body: body["instances"]),
    "elxega": ("/v1/workloads", lambda body: body["data"]["workloads"]),
}


@dataclass
class _Acting:
    """Who acts, as the instances service needs it (a Caller, in a request)."""

    user: User
    project_scope: int | None = None

    @property
    def user_id(self) -> int:
        return self.user.id


@dataclass
class Servers:
    """A cloud with no worker, a customer, an operator, and a way to add servers."""

    runtime: Runtime
    api: Api
    customer: Person
    admin: Person
    made: list[CreatedInstance] = field(default_factory=list)

    def add(self, count: int) -> None:
        """Order `count` more servers; every other one is then built (unlocked, running), the rest stay held."""
        with self.runtime.db.session() as session:
            for _ in range(count):
                number = len(self.made) + 1
                self.made.append(build.create_instance(
                    session, self.runtime.settings, _Acting(self.customer.user),
                    InstanceCreate(name=f"web-{number}", hostname=f"web-{number}.example.com", plan="scout-1",
                                   template=TEMPLATE),
                    actor_project=self.customer.project_id))
            # the operators' /metrics lists the servers the sampler read: give each a reading
            for created in self.made[-count:]:
                now = clock.now()
                session.add(InstanceCounters(instance_id=created.instance.id, read_at=now, sampled_at=now,
                                             running=True, running_since=now, cpu_time_ns=1, disk_read_bytes=0,
                                             disk_write_bytes=0, net_rx_bytes=0, net_tx_bytes=0))
        for number, created in enumerate(self.made[-count:], start=len(self.made) - count + 1):
            if number % 2 == 0:
                self.finish(created.action.id)

    def finish(self, action_id: int) -> None:
        """Record a create action's tasks done, as the worker would: the server runs and is unlocked."""
        with self.runtime.db.session() as session:
            for task in CREATE_TASKS[:-1]:
                action_engine.complete_task(session, action_id, task)
            build.finish_create(session, self.runtime.settings, action_id)


@pytest.fixture
def servers(runtime: Runtime, api: Api, fake_image_file: Path) -> Iterator[Servers]:
    """A node with room for a hundred small servers and a customer who can pay for them; no worker."""
    driver = FakeDriver()
    previous = runtime.drivers.use(lambda uri: driver)
    try:
        prepare_cloud(runtime, driver, fake_image_file, capacity=Resources(vcpu=128, memory_mib=262144,
                                                                           disk_gib=10000))
        customer = make_user(runtime, "customer@example.com")
        credit(runtime, customer, 1_000_000)
        yield Servers(runtime=runtime, api=api, customer=customer, admin=make_user(runtime, "ops@example.com",
                                                                                  admin=True))
    finally:
        runtime.drivers.use(previous)


class StatementCounter:
    """Counts the SQL statements the engine runs while it is on."""

    def __init__(self, runtime: Runtime) -> None:
        self.engine = runtime.db.engine
        self.count = 0
        self.on = False
        self.statements: list[str] = []
        event.listen(self.engine, "before_cursor_execute", self._seen)

    def _seen(self, _connection: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if self.on:
            self.count += 1
            self.statements.append(statement)

    def measure(self, call: Callable[[], Any]) -> int:
        """The fewest statements of three runs of call (a background flush may land in one of them)."""
        counts = []
        for _ in range(3):
            self.count, self.on, self.statements = 0, True, []
            try:
                call()
            finally:
                self.on = False
            counts.append(self.count)
        return min(counts)

    def close(self) -> None:
        """Stop listening."""
        event.remove(self.engine, "before_cursor_execute", self._seen)


@pytest.fixture
def counter(runtime: Runtime) -> Iterator[StatementCounter]:
    """A statement counter on the app's engine."""
    made = StatementCounter(runtime)
    yield made
    made.close()


def _listing(servers: Servers, path: str, items: Callable[[Any], list[Any]], expected: int) -> Callable[[], None]:
    def run() -> None:
        answer = servers.api.as_(servers.customer.token).get(path)
        assert answer.status_code == 200, answer.text
        assert len(items(answer.json())) == expected
    return run


def test_no_list_costs_more_statements_for_more_servers(servers: Servers, counter: StatementCounter) -> None:
    servers.add(2)
    few = {name: counter.measure(_listing(servers, path, items, 2)) for name, (path, items) in LISTS.items()}
    scrape = servers.api.as_(servers.admin.token)
    few["prometheus"] = counter.measure(lambda: scrape.get("/metrics").raise_for_status())
    servers.add(28)
    many = {name: counter.measure(_listing(servers, path, items, 30)) for name, (path, items) in LISTS.items()}
    many["prometheus"] = counter.measure(lambda: scrape.get("/metrics").raise_for_status())
    assert scrape.get("/metrics").text.count("cloudlet_instance_up{") == 30
    assert many == few, f"statements for 2 servers: {few}; for 30: {many}"


def test_a_list_reads_no_user_row_for_a_caller_it_knows(servers: Servers, counter: StatementCounter) -> None:
    # the credential cache says who calls; the tenancy rule needs the user's id, not the user's row
    servers.add(1)
    for name, (path, items) in LISTS.items():
        counter.measure(_listing(servers, path, items, 1))
        assert not [s for s in counter.statements if "FROM users" in s], name


def test_a_locked_server_says_which_action_holds_it(servers: Servers) -> None:
    servers.add(2)  # the first stays held by its build, the second is built
    held, built = servers.made
    client = servers.api.as_(servers.customer.token)
    listed = {i["id"]: i for i in client.get("/api/instances").json()}
    assert listed[held.instance.uuid]["locked"] is True and listed[held.instance.uuid]["allowed_actions"] == []
    assert listed[held.instance.uuid]["action"] == {"id": held.action.id, "command": "create", "progress": 0}
    assert listed[built.instance.uuid]["locked"] is False and listed[built.instance.uuid]["action"] is None
    assert "shutdown" in listed[built.instance.uuid]["allowed_actions"]
    with servers.runtime.db.session() as session:  # the build moves on: its progress shows
        action_engine.complete_task(session, held.action.id, CREATE_TASKS[0])
    shown = client.get(f"/v1/instances/{held.instance.uuid}").json()
    assert shown["locked"] is True and shown["allowed_actions"] == []
    assert shown["action"] == {"id": str(held.action.id), "command": "create", "progress": 10}
    assert client.get(f"/v1/instances/{built.instance.uuid}").json()["action"] is None


def test_another_customer_lists_none_of_them(servers: Servers) -> None:
    servers.add(2)
    stranger = make_user(servers.runtime, "stranger@example.com")
    client = servers.api.as_(stranger.token)
    for path, items in LISTS.values():
        assert items(client.get(path).json()) == []
    assert client.get(f"/api/instances/{servers.made[0].instance.uuid}").status_code == 404
    assert client.get(f"/api/v1/vps/{servers.made[0].instance.id}/deployment").status_code == 404


def test_a_deployment_is_read_from_one_snapshot(servers: Servers, database_url: str) -> None:
    """A build that commits while the deployment is read shows wholly before or wholly after, never half."""
    if database_url.startswith("sqlite"):
        pytest.skip("a SQLite read transaction sees one snapshot whatever its statements; the race is PostgreSQL's")
    servers.add(1)
    created = servers.made[0]
    with servers.runtime.db.session() as session:
        for task in CREATE_TASKS[:-1]:
            action_engine.complete_task(session, created.action.id, task)
    engine = servers.runtime.db.engine
    committed = threading.Event()

    def finish_elsewhere() -> None:
        with servers.runtime.db.session() as session:
            build.finish_create(session, servers.runtime.settings, created.action.id)

    def build_commits_meanwhile(_conn: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
        # right after the request's first read of the server, before any other, the build commits elsewhere
        if committed.is_set() or "FROM instances" not in statement:
            return
        committed.set()
        other = threading.Thread(target=finish_elsewhere)
        other.start()
        other.join(10)

    event.listen(engine, "after_cursor_execute", build_commits_meanwhile)
    try:
        answer = servers.api.as_(servers.customer.token).get(f"/api/v1/vps/{created.instance.id}/deployment")
    finally:
        event.remove(engine, "after_cursor_execute", build_commits_meanwhile)
    assert committed.is_set() and answer.status_code == 200, answer.text
    body = answer.json()["data"]
    assert (body["deployment_status"], body["vps_status"]) in {("in_progress", "deploying"), ("completed", "running")}
    after = servers.api.as_(servers.customer.token).get(f"/api/v1/vps/{created.instance.id}/deployment").json()
    assert (after["data"]["deployment_status"], after["data"]["vps_status"]) == ("completed", "running")
