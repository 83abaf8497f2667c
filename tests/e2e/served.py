"""One real guest for a whole e2e module: a migrated SQLite database, a `cloudlet serve` process on this machine's
libvirtd, and a running server of a customer's, removed (and checked gone) when the module ends.

TCG boots are slow and the machine is shared, so the power and rebuild modules each share one guest and run
their tests in order, each starting from the state the one before left.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from cloudlet.drivers.base import GuestNotFound
from cloudlet.drivers.libvirt.guest import LibvirtDriver
from cloudlet.kit import migrate
from cloudlet.surfaces.deps import Runtime
from tests.cloud import prepare_cloud
from tests.conftest import make_settings
from tests.contract.conftest import _libvirt_driver, leftovers
from tests.e2e.test_instances_libvirt import (
    BOOT_SECONDS,
    DELETION_SECONDS,
    GuestCluster,
    client,
    customer,
    guest_name,
    order,
    status_of,
)
from tests.helpers import Person, mint_token
from tests.integration.test_worker import wait_for

ANSWER_WAIT = 240  # CyberPanel's answers wait this long for the action: long enough for a TCG boot here


@dataclass
class Guest:
    """The module's one server: who owns it, its ids, its guest's name, its address, and the server's URL."""

    url: str
    person: Person
    uid: str  # the primary surface's id
    vps: int  # CyberPanel's id
    name: str
    address: str
    node: LibvirtDriver
    runtime: Runtime


@contextmanager
def served_guest(tmp_path_factory: pytest.TempPathFactory, tiny_image: Path, hostname: str,
                 extra_env: dict[str, str]) -> Iterator[Guest]:
    """A server and its running guest for the module; extra_env adds to the server's environment."""
    from cloudlet.app import build_runtime

    tmp = tmp_path_factory.mktemp(hostname.split(".")[0])
    database_url = f"sqlite:///{tmp / 'cloudlet.db'}"  # one engine: one real guest
    runtime = build_runtime(make_settings(tmp, database_url))
    migrate.upgrade(runtime.db.engine)
    node = _libvirt_driver()
    assert isinstance(node, LibvirtDriver)
    image = f"e2e-{uuid.uuid4().hex[:8]}"
    (tmp / "cluster").mkdir()
    cluster = GuestCluster(runtime, database_url, tmp / "cluster", [])
    cluster.extra = {"CLOUDLET_INSTANCE_POWER_WAIT_SECONDS": str(ANSWER_WAIT),
                     # the reconciler is not what these modules test, and on a node shared with other test runs a
                     # guest of theirs that vanishes while it lists the node makes it mark ours unknown
                     "CLOUDLET_INSTANCE_RECONCILE_SCHEDULE": "0 0 0 1 1 *", **extra_env}
    name: str | None = None
    try:
        prepare_cloud(runtime, node, tiny_image, node_uri="qemu:///system", image_name=image)
        _process, url = cluster.serve()
        person = customer(runtime)
        with client(url, person) as http:
            created = http.post("/api/instances", json=order(runtime, person, hostname))
            assert created.status_code == 201, created.text
            uid = created.json()["id"]
            name = guest_name(runtime, uid)
            wait_for(lambda: status_of(http, uid) == "running", "the guest to run", seconds=BOOT_SECONDS)
            address = http.get(f"/api/instances/{uid}").json()["main_ip"]
            vps = http.get(f"/api/v1/vps/{uid}").json()["data"]["id"]
        yield Guest(url=url, person=person, uid=uid, vps=vps, name=name, address=address, node=node,
                    runtime=runtime)
        with client(url, person) as http:
            http.request("DELETE", f"/api/instances/{uid}", json={"mode": "immediate"})
            wait_for(lambda: status_of(http, uid) == "gone", "the deletion", seconds=DELETION_SECONDS)
        with pytest.raises(GuestNotFound):
            node.state(name)
        assert leftovers(node, name) == []
    finally:
        for process in cluster.started:
            process.stop()
        if name is not None:
            node.destroy_guest(name)  # whatever a failed test left behind
        node.delete_image(image)
        runtime.mailer.close()
        runtime.db.dispose()


def cyberpanel(guest: Guest) -> httpx.Client:
    """The customer on the CyberPanel surface, patient enough for its answers that wait for the guest."""
    token = mint_token(guest.runtime, guest.person, "vps:read", "vps:write")
    return httpx.Client(base_url=guest.url, headers={"Authorization": f"Bearer {token}"}, timeout=ANSWER_WAIT + 30)
