"""Instances with real guests: `cloudlet serve` / `cloudlet api` + `cloudlet worker` processes build QEMU
guests (TCG) on this machine's libvirtd, from the tiny image, through the public API.

The database and the node are set up in-process through the services (what an operator's commands
do); everything a customer does goes over HTTP to the real processes.
"""

from __future__ import annotations

import signal
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from cloudlet.drivers.libvirt.guest import LibvirtDriver
from cloudlet.instances import repository as instance_rows
from cloudlet.instances.models import Instance
from cloudlet.surfaces.deps import Runtime
from tests.cloud import SSH_KEY, credit, prepare_cloud
from tests.contract.conftest import _libvirt_driver, leftovers, tiny_image
from tests.helpers import Person, make_user
from tests.integration.test_worker import wait_for
from tests.integration.test_worker_processes import Cluster, Process

__all__ = ["tiny_image"]

pytestmark = pytest.mark.long(seconds=170)

BOOT_SECONDS = 180  # a TCG boot takes ~5 s alone; several at once on two cores take longer
PASSWORD = "Guest-pass-2026"
# a deletion removes the guest's volumes, and the node's pool waits out another test's volume job (an image
# upload, a backup) for up to a minute before it does (drivers/libvirt/storage.py refresh)
DELETION_SECONDS = 180


class GuestCluster(Cluster):
    """Processes whose worker builds guests on the local libvirt node and sweeps every second."""

    extra: dict[str, str]

    def env(self) -> dict[str, str]:
        """The cluster's environment plus quick sweeps and whatever the test adds."""
        return {**super().env(), "CLOUDLET_INSTANCE_SWEEP_SCHEDULE": "* * * * * *",
                "CLOUDLET_INSTANCE_RECONCILE_SCHEDULE": "* * * * * *", **self.extra}

    def api(self) -> str:
        """`cloudlet api` (no worker) on a free port; its base URL once it answers."""
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        process = self.start("api", "api", "--port", str(port))
        url = f"http://127.0.0.1:{port}"

        def ready() -> bool:
            if process.popen.poll() is not None:
                pytest.fail(f"api exited:\n{process.log.read_text()}")
            try:
                return httpx.get(f"{url}/health/ready", timeout=1).status_code == 200
            except httpx.TransportError:
                return False

        wait_for(ready, "the api to answer", seconds=30)
        return url

    def worker(self) -> Process:
        """`cloudlet worker`, once it has started."""
        process = self.start(f"worker-{len(self.started)}", "worker")

        def started() -> bool:
            if process.popen.poll() is not None:
                pytest.fail(f"worker exited:\n{process.log.read_text()}")
            return any(e.get("event") == "worker started" for e in process.events())

        wait_for(started, "the worker to start", seconds=30)
        return process


@pytest.fixture
def node(runtime: Runtime, tiny_image: Path) -> Iterator[LibvirtDriver]:
    """This machine's libvirtd as the region's node, with the tiny image in its pool under a name of its own."""
    driver = _libvirt_driver()
    assert isinstance(driver, LibvirtDriver)
    name = f"e2e-{uuid.uuid4().hex[:8]}"
    try:
        prepare_cloud(runtime, driver, tiny_image, node_uri="qemu:///system", image_name=name)
        yield driver
    finally:
        for guest in _guests_of(runtime):  # a test that failed half way leaves no guest running for the next
            driver.destroy_guest(guest)
        driver.delete_image(name)


def _guests_of(runtime: Runtime) -> list[str]:
    """The guest names of every instance in the test's database (each test has a database of its own)."""
    with runtime.db.session(write=False) as session:
        return list(session.scalars(select(Instance.guest_name)))


@pytest.fixture
def cluster(runtime: Runtime, database_url: str, tmp_path: Path) -> Iterator[GuestCluster]:
    """Processes on the test's database, all stopped after the test."""
    made = GuestCluster(runtime, database_url, tmp_path, [])
    made.extra = {}
    try:
        yield made
    finally:
        for process in made.started:
            process.stop()


def customer(runtime: Runtime) -> Person:
    """A customer with $100 in the wallet."""
    person = make_user(runtime, f"c-{uuid.uuid4().hex[:6]}@example.com")
    credit(runtime, person, 10_000)
    return person


def client(url: str, person: Person) -> httpx.Client:
    """An HTTP client acting as the person."""
    return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {person.token}"}, timeout=30)


def order(runtime: Runtime, person: Person, hostname: str) -> dict[str, Any]:
    """A create body for the default plan and template."""
    from cloudlet.catalog import service as catalog

    with runtime.db.session(write=False) as session:
        plan = catalog.get_plan(session, "scout-1")
        template = catalog.get_template(session, "debian-12-tiny")
    return {"name": hostname.split(".")[0], "hostname": hostname, "project_id": person.project_id,
            "package_id": plan.id, "category": "standard", "os_template_id": template.id, "os_name": "Debian 12",
            "billing_cycle": "monthly", "ssh_key_ids": [], "root_password": PASSWORD}


def status_of(http: httpx.Client, instance_id: str) -> str:
    """The instance's status, or "gone" once it answers 404."""
    answer = http.get(f"/api/instances/{instance_id}")
    return "gone" if answer.status_code == 404 else str(answer.json()["status"])


def idle(http: httpx.Client, instance_id: str, seconds: float = BOOT_SECONDS) -> dict[str, Any]:
    """Wait until the instance runs with no action holding it (a restart's guest is back, say); its detail. A
    timeout says where the server and its newest action stood."""
    def check() -> dict[str, Any] | None:
        found: dict[str, Any] = http.get(f"/api/instances/{instance_id}").json()
        if found["status"] == "error":
            pytest.fail("the server went to error")  # said with its newest action below
        return found if found["status"] == "running" and not found["locked"] else None
    try:
        return wait_for(check, "the action to end with the server running", seconds=seconds)
    except pytest.fail.Exception as timeout:
        detail = http.get(f"/api/instances/{instance_id}").json()
        actions = http.get(f"/api/instances/{instance_id}/actions").json()
        raise AssertionError(f"{timeout}: status {detail['status']}, locked {detail['locked']}, newest action "
                             f"{actions[0] if actions else None}") from None


def guest_name(runtime: Runtime, instance_id: str) -> str:
    """The name the node knows the instance's guest by."""
    with runtime.db.session(write=False) as session:
        row = instance_rows.instance(session, instance_id)
        assert row is not None
        return row.guest_name


def test_a_server_is_built_with_its_hostname_password_and_key_reconciled_and_deleted_with_a_refund(
        runtime: Runtime, node: LibvirtDriver, cluster: GuestCluster) -> None:
    _process, url = cluster.serve()
    person = customer(runtime)
    with client(url, person) as http:
        key = http.post("/api/ssh-keys", json={"name": "laptop", "public_key": SSH_KEY}).json()
        body = order(runtime, person, "web-1.example.com") | {"ssh_key_ids": [key["id"]]}
        created = http.post("/api/instances", json=body)
        assert created.status_code == 201, created.text
        server = created.json()
        wait_for(lambda: status_of(http, server["id"]) == "running", "the guest to run", seconds=BOOT_SECONDS)
        detail = http.get(f"/api/instances/{server['id']}").json()
        assert detail["vf_remote_state"]["state"] == "running" and detail["vf_remote_state"]["memory"]["memtotal"]
        # what the guest itself printed once its seed was applied, read from its serial console on the node
        logs = http.get(f"/v1/instances/{server['id']}/install-logs").json()["logs"]
        ready = next(line for line in logs if line.startswith("CLOUDLET_READY"))
        assert f"instance-id={server['id']}" in ready and "hostname=web-1" in ready
        assert f"address={server['main_ip']}" in ready and "keys=1" in ready and "password=set" in ready
        name = guest_name(runtime, server["id"])
        assert name in {g.name for g in node.list_guests()}
        # stopped behind Cloudlet's back: the worker's reconciler notices and says so
        node.poweroff(name)
        wait_for(lambda: status_of(http, server["id"]) == "stopped", "the reconciler to see it", seconds=30)
        assert "stopped by itself" in http.get(f"/api/instances/{server['id']}").json()["status_reason"]

        deleted = http.request("DELETE", f"/api/instances/{server['id']}", json={"mode": "immediate"})
        assert deleted.status_code == 200 and deleted.json()["refund_cents"] > 0
        wait_for(lambda: status_of(http, server["id"]) == "gone", "the deletion", seconds=DELETION_SECONDS)
        assert name not in {g.name for g in node.list_guests()} and leftovers(node, name) == []
        refunds = [e for e in http.get("/api/wallet/transactions").json()["data"] if e["kind"] == "refund"]
        assert [e["amount_cents"] for e in refunds] == [deleted.json()["refund_cents"]]
    with runtime.db.session(write=False) as session:
        from cloudlet.networking import service as networking

        assert networking.allocations(session, server["id"]) == []


def test_a_worker_killed_while_the_guest_boots_is_replaced_and_the_build_finishes(
        runtime: Runtime, node: LibvirtDriver, cluster: GuestCluster) -> None:
    url = cluster.api()
    first = cluster.worker()
    person = customer(runtime)
    with client(url, person) as http:
        server = http.post("/api/instances", json=order(runtime, person, "crash-1.example.com")).json()

        def booting() -> bool:
            action = http.get(f"/api/instances/{server['id']}/actions").json()[0]
            return action["current_task"] == "wait_for_guest_agent"

        wait_for(booting, "the build to reach the guest's boot", seconds=60)
        first.popen.send_signal(signal.SIGKILL)
        assert first.popen.wait(timeout=10) == -signal.SIGKILL
        assert status_of(http, server["id"]) == "provisioning"
        cluster.worker()  # takes the dead worker's executor slot and recovers its workflow
        wait_for(lambda: status_of(http, server["id"]) == "running", "the recovered build", seconds=BOOT_SECONDS)
        action = http.get(f"/api/instances/{server['id']}/actions").json()[0]
        assert action["status"] == "success" and [t["status"] for t in action["tasks"]] == ["completed"] * 10
        charges = [e for e in http.get("/api/wallet/transactions").json()["data"] if e["kind"] == "charge_create"]
        assert len(charges) == 1
        name = guest_name(runtime, server["id"])
        assert [g.name for g in node.list_guests()].count(name) == 1
        http.request("DELETE", f"/api/instances/{server['id']}", json={"mode": "immediate"})
        wait_for(lambda: status_of(http, server["id"]) == "gone", "the deletion", seconds=DELETION_SECONDS)


@pytest.mark.engines("sqlite")  # the clean-up and refund on PostgreSQL are in tests/integration/test_instances.py
def test_a_guest_that_never_reports_ready_is_removed_and_refunded_in_full(
        runtime: Runtime, node: LibvirtDriver, cluster: GuestCluster) -> None:
    cluster.extra = {"CLOUDLET_INSTANCE_READY_TIMEOUT_SECONDS": "0.5"}  # no TCG guest boots that fast
    _process, url = cluster.serve()
    person = customer(runtime)
    with client(url, person) as http:
        before = http.get("/api/wallet/balance").json()["balance_cents"]
        server = http.post("/api/instances", json=order(runtime, person, "slow-1.example.com")).json()
        wait_for(lambda: status_of(http, server["id"]) == "error", "the build to fail", seconds=60)
        action = http.get(f"/api/instances/{server['id']}/actions").json()[0]
        failed = [t for t in action["tasks"] if t["status"] == "failed"]
        assert [t["name"] for t in failed] == ["wait_for_guest_agent"] and "not ready within" in failed[0]["detail"]
        name = guest_name(runtime, server["id"])
        assert name not in {g.name for g in node.list_guests()} and leftovers(node, name) == []
        assert http.get("/api/wallet/balance").json()["balance_cents"] == before
        assert http.get(f"/api/instances/{server['id']}").json()["main_ip"] is None


@pytest.mark.engines("postgresql")  # three real guests once: each surface's create runs on both in integration
def test_servers_ordered_on_cyberpanel_wayscloud_and_shardlyn_run_and_go_on_each(
        runtime: Runtime, node: LibvirtDriver, cluster: GuestCluster) -> None:
    _process, url = cluster.serve()
    person = customer(runtime)
    plan, template = order(runtime, person, "x.example.com")["package_id"], "debian-12-tiny"
    with client(url, person) as http:
        made = {
            "cyberpanel": http.post("/api/v1/vps/create", json={
                "hostname": "cp-1.example.com", "plan_id": plan, "location_code": "dc1", "template_id": template,
                "root_password": PASSWORD, "ssh_key": SSH_KEY}),
            "wayscloud": http.post("/v1/vps", headers={"X-API-Key": person.token}, json={
                "hostname": "wc-1.example.com", "plan_code": "scout-1", "region": "dc1", "os_template": template,
                "display_name": "WaysCloud one", "ssh_keys": [SSH_KEY]}),
            "shardlyn": http.post("/v1/instances", json={
                "name": "sh-1", "hostname": "sh-1.example.com", "plan": "scout-1", "region": "dc1",
                "template": template, "ssh_keys": [SSH_KEY], "root_password": PASSWORD}),
        }
        assert all(answer.status_code in (200, 201) for answer in made.values()), {
            k: v.text for k, v in made.items()}
        ids = {"cyberpanel": str(made["cyberpanel"].json()["data"]["vps_id"]),
               "wayscloud": made["wayscloud"].json()["id"], "shardlyn": made["shardlyn"].json()["id"]}
        uuids = {surface: http.get(f"/api/instances/{ident}").json()["id"] for surface, ident in ids.items()}
        for surface, instance_id in uuids.items():
            wait_for(lambda i=instance_id: status_of(http, i) == "running", f"the {surface} guest to run",
                     seconds=BOOT_SECONDS)
            ready = next(line for line in http.get(f"/v1/instances/{instance_id}/install-logs").json()["logs"]
                         if line.startswith("CLOUDLET_READY"))
            short = {"cyberpanel": "cp-1", "wayscloud": "wc-1", "shardlyn": "sh-1"}[surface]
            assert f"hostname={short}" in ready and "keys=1" in ready and "password=set" in ready, ready
        # each surface reads its own the way it speaks
        deployment = http.get(f"/api/v1/vps/{ids['cyberpanel']}/deployment").json()["data"]
        assert deployment["deployment_status"] == "completed" and deployment["progress_percent"] == 100
        waysclouds = http.get(f"/v1/vps/{ids['wayscloud']}", headers={"X-API-Key": person.token}).json()
        assert waysclouds["status"] == "running" and waysclouds["display_name"] == "WaysCloud one"
        assert http.get(f"/v1/instances/{ids['shardlyn']}").json()["status"] == "running"
        workloads = http.get("/v1/workloads").json()["data"]["workloads"]
        assert sorted(w["status"] for w in workloads) == ["running"] * 3
        names = {guest_name(runtime, instance_id) for instance_id in uuids.values()}
        assert names <= {g.name for g in node.list_guests()}

        assert http.post(f"/api/v1/vps/{ids['cyberpanel']}/delete").status_code == 200
        assert http.delete(f"/v1/instances/{ids['shardlyn']}").status_code == 200
        assert http.request("DELETE", f"/api/instances/{uuids['wayscloud']}",
                            json={"mode": "immediate"}).status_code == 200
        for instance_id in uuids.values():
            wait_for(lambda i=instance_id: status_of(http, i) == "gone", "the deletion", seconds=DELETION_SECONDS)
        assert not names & {g.name for g in node.list_guests()}
        assert all(leftovers(node, name) == [] for name in names)
        refunds = [e for e in http.get("/api/wallet/transactions").json()["data"] if e["kind"] == "refund"]
        assert len(refunds) == 3
