"""A small cloud for instance tests: the default catalogue, one node answering through a FakeDriver,
the "tiny" image on it, an IP pool, a running worker, and a customer with money.

tests/conftest.py loads this module as a plugin, so every test can ask for `cloud`.
"""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from dbos import DBOS

from cloudlet import catalogue_file
from cloudlet.app import create_worker
from cloudlet.billing import service as billing
from cloudlet.billing.schemas import CreditCreate
from cloudlet.catalog import service as catalog
from cloudlet.catalog.schemas import TemplateUpdate
from cloudlet.drivers.base import HypervisorDriver
from cloudlet.drivers.fake import FakeDriver
from cloudlet.images import service as images
from cloudlet.images.models import ImageCapability, ImageSource
from cloudlet.images.schemas import ImageRegister
from cloudlet.nodes import service as nodes
from cloudlet.nodes import workflows as node_workflows
from cloudlet.nodes.schemas import NodeCreate, Resources
from cloudlet.surfaces.deps import Runtime
from cloudlet.worker import Worker, current
from tests.conftest import Api
from tests.helpers import Person, make_user

IMAGE = "tiny"
TEMPLATE = "debian-12-tiny"
REGION = "dc1"
NODE_URI = "qemu+ssh://hv1.example.net/system"
SSH_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIIpAa7nmiR1Lk+BrjVtE4ZoZ2DARfuwHpSJ1OEzgqSHm test@cloudlet"


@dataclass
class Cloud:
    """What a test of instances works with."""

    runtime: Runtime
    api: Api
    driver: FakeDriver
    worker: Worker
    customer: Person
    node_id: int
    template_id: int
    plan_id: int

    def client(self, person: Person | None = None) -> httpx.Client:
        """A client acting as the person (the customer by default) with a full token."""
        return self.api.as_((person or self.customer).token)

    def credit(self, person: Person, cents: int) -> None:
        """Put money into the person's personal wallet."""
        credit(self.runtime, person, cents)

    def image_can(self, *capabilities: ImageCapability) -> None:
        """Say what the cloud's image can do, as `cloudlet images build` records it (nothing, by default)."""
        with self.runtime.db.session() as session:
            image = images.get_image(session, IMAGE)
            images.register_image(session, ImageRegister(
                name=IMAGE, source=image.source, volume=image.volume, virtual_size_bytes=image.virtual_size_bytes,
                os_family="debian", capabilities=frozenset(capabilities)))

    def balance(self, person: Person | None = None) -> int:
        """The person's personal wallet balance in cents."""
        with self.runtime.db.session() as session:
            return billing.balance_cents(session, self.runtime.settings, (person or self.customer).project_id)


def credit(runtime: Runtime, person: Person, cents: int) -> None:
    """Put money into the person's personal wallet."""
    with runtime.db.session() as session:
        billing.admin_credit(session, runtime.settings, person.project_id,
                             CreditCreate(amount_cents=cents, reason="test"), actor=person.user)


def wait_for(check: Callable[[], Any], timeout: float = 30.0, interval: float = 0.1) -> Any:
    """Poll check() until it returns something truthy; fail the test after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout}s (last: {found!r})")
        time.sleep(interval)


class WrappedDriver:
    """The cloud's FakeDriver with some methods replaced by the test; the rest go to it."""

    def __init__(self, inner: FakeDriver, **replaced: Callable[..., Any]) -> None:
        self.inner = inner
        self.replaced = replaced

    def __getattr__(self, name: str) -> Any:
        return self.replaced.get(name) or getattr(self.inner, name)


class HeldDriver(WrappedDriver):
    """The cloud's FakeDriver, except that the methods named wait for the test to open the gate."""

    def __init__(self, inner: FakeDriver, *held: str) -> None:
        self.gate = threading.Event()
        self.waiting = threading.Event()  # a held call has arrived
        super().__init__(inner, **{name: self._held(getattr(inner, name)) for name in held})

    def _held(self, method: Callable[..., Any]) -> Callable[..., Any]:
        def held(*args: Any, **kwargs: Any) -> Any:
            self.waiting.set()
            self.gate.wait(30)
            return method(*args, **kwargs)
        return held


@pytest.fixture
def node_driver(cloud: Cloud) -> Iterator[Callable[[Any], None]]:
    """Point the node's URI at another driver for the rest of the test (the cloud's own afterwards)."""
    chosen: list[Any] = []

    def use(driver: Any) -> None:
        chosen.append(driver)
        cloud.runtime.drivers.use(lambda uri: driver)

    try:
        yield use
    finally:
        for driver in chosen:
            if isinstance(driver, HeldDriver):
                driver.gate.set()
        cloud.runtime.drivers.use(lambda uri: cloud.driver)


def actions_ended() -> bool:
    """Whether no action's workflow is still running or queued (so the worker may stop)."""
    try:
        current()
    except RuntimeError:
        return True  # the test stopped the worker itself
    return not DBOS.list_workflows(name="cloudlet.instances.run", status=["PENDING", "ENQUEUED"],
                                   load_input=False, load_output=False)


@pytest.fixture(scope="session")
def fake_image_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 1 GiB empty qcow2, what the FakeDriver needs to record an image."""
    path = tmp_path_factory.mktemp("img") / "tiny.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(path), "1G"], check=True)
    return path


def prepare_cloud(runtime: Runtime, driver: HypervisorDriver, image_file: Path, *, node_uri: str = NODE_URI,
                  capacity: Resources | None = None, image_name: str = IMAGE) -> tuple[int, int]:
    """The default catalogue, a node at node_uri with the image on it, the template pointing at it.

    Returns (node id, template id). The caller chooses how node URIs become drivers (runtime.drivers).
    """
    info = driver.import_image(image_name, image_file)
    with runtime.db.session() as session:
        catalogue_file.seed_default(session)
        image = images.register_image(session, ImageRegister(
            name=image_name, source=ImageSource.BUILT, volume=image_name,
            virtual_size_bytes=info.virtual_size_bytes))
        template = catalog.get_template(session, TEMPLATE)
        catalog.update_template(session, template.id, TemplateUpdate(image_id=image.id))
        node = nodes.create_node(session, NodeCreate(
            name="hv1", uri=node_uri, region=REGION,
            capacity=capacity or Resources(vcpu=16, memory_mib=65536, disk_gib=2000)))
    node_workflows.heartbeat_all(runtime.db, runtime.settings, runtime.drivers)
    return node.id, template.id


@pytest.fixture
def node_uri() -> str:
    """The URI the cloud's node is registered with (this process reaches it through the FakeDriver whatever it
    is; a module overrides it where another process must reach the node on its own)."""
    return NODE_URI


@pytest.fixture
def cloud(runtime: Runtime, api: Api, fake_image_file: Path, node_uri: str) -> Iterator[Cloud]:
    """A ready cloud on a FakeDriver node with a running worker and a customer holding $100."""
    driver = FakeDriver()
    previous = runtime.drivers.use(lambda uri: driver)
    worker = create_worker(runtime=runtime)
    try:
        node_id, template_id = prepare_cloud(runtime, driver, fake_image_file, node_uri=node_uri)
        with runtime.db.session(write=False) as session:
            plan_id = catalog.get_plan(session, "scout-1").id
        worker.start()
        made = Cloud(runtime=runtime, api=api, driver=driver, worker=worker,
                     customer=make_user(runtime, "customer@example.com"), node_id=node_id,
                     template_id=template_id, plan_id=plan_id)
        made.credit(made.customer, 10_000)
        yield made
        wait_for(actions_ended)  # the worker stops next: let every action record its end first
    finally:
        worker.stop(grace_seconds=0)
        runtime.drivers.use(previous)
