"""A plan's bandwidth cap with real packets: a test host in a network namespace on the guests' bridge sends a
bulk transfer to a real tiny guest (its sink on port 7070 answers how many bytes came) and takes one from it (its
source on port 7071), timing both, capped at the plan's 8 Mbit/s and again once the operator lifts the plan's
cap (the quota round gives the running guest its plan's cap within a second here). On a kernel without what
libvirt's <bandwidth> needs, the driver shapes what goes to the guest with tbf and the node's firewall table
polices what the guest sends (drivers/libvirt/network.py). A policer drops rather than queues, and its bucket
holds a second's worth plus a burst: the download is checked against that bound (no faster than the bucket
allows, whatever the guest's pace) rather than against a rate, which a sender slowed by a busy machine for a
moment can push past the cap on any short span; the uncapped download must still be more than four times the
cap."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from cloudlet.catalog import service as catalog
from cloudlet.catalog.schemas import PlanUpdate
from cloudlet.drivers.libvirt import firewall
from cloudlet.drivers.libvirt.guest import LibvirtDriver
from cloudlet.networking import service as networking
from cloudlet.networking.schemas import IpPoolUpdate
from cloudlet.surfaces.deps import Runtime
from tests.cloud import REGION
from tests.e2e.test_instances_libvirt import (
    DELETION_SECONDS,
    GuestCluster,
    client,
    cluster,
    customer,
    guest_name,
    node,
    order,
    status_of,
    tiny_image,
)
from tests.e2e.test_shield_libvirt import BOOT_SECONDS, host_namespace
from tests.integration.test_worker import wait_for

pytestmark = [pytest.mark.long(seconds=120), pytest.mark.engines("sqlite")]

__all__ = ["cluster", "node", "tiny_image"]

TEST_HOST = "203.0.113.251"
# this test's guest takes one of 203.0.113.208-215 (the Shield test's takes 200-207); the test host's is reserved
RESERVED = ["203.0.113.0/25", "203.0.113.128/26", "203.0.113.192/28", "203.0.113.216/29", "203.0.113.224/27"]
CAP_MBIT = 8
SENT = 3_000_000  # bytes: 3 s at the cap
SEND = textwrap.dedent("""
    import socket, sys, time
    address, size = sys.argv[1], int(sys.argv[2])
    chunk = b"x" * 65536
    with socket.create_connection((address, 7070), timeout=30) as c:
        started = time.monotonic()
        left = size
        while left > 0:
            left -= c.send(chunk[:min(left, len(chunk))])
        c.shutdown(socket.SHUT_WR)
        answer = b""
        while (part := c.recv(64)):
            answer += part
        print(int(answer), time.monotonic() - started)
""")


FROM_GUEST = 46 * 65536  # what the guest's source on port 7071 sends
RECEIVE = textwrap.dedent("""
    import socket, sys, time
    with socket.create_connection((sys.argv[1], 7071), timeout=30) as c:
        first = len(c.recv(65536))
        got, started = first, time.monotonic()
        while (part := c.recv(65536)):
            got += len(part)
        print(got, got - first, time.monotonic() - started)
""")


def download(namespace: str, address: str) -> tuple[int, float]:
    """Take what the guest's source sends: the bytes that came after the first read, and the seconds they took."""
    done = subprocess.run(["ip", "netns", "exec", namespace, sys.executable, "-c", RECEIVE, address],
                          capture_output=True, text=True, timeout=120, check=True)
    received, after_first, seconds = done.stdout.split()
    assert int(received) == FROM_GUEST
    return int(after_first), float(seconds)


def mbit(count: int, seconds: float) -> float:
    return count * 8 / seconds / 1_000_000


def transfer_mbit(namespace: str, address: str) -> float:
    """Send SENT bytes to the guest's sink; the rate the guest took them at, in Mbit/s."""
    done = subprocess.run(["ip", "netns", "exec", namespace, sys.executable, "-c", SEND, address, str(SENT)],
                          capture_output=True, text=True, timeout=120, check=True)
    received, seconds = done.stdout.split()
    assert int(received) == SENT
    return SENT * 8 / float(seconds) / 1_000_000


def test_the_plans_cap_holds_a_transfer_near_its_rate(runtime: Runtime, node: LibvirtDriver,
                                                      cluster: GuestCluster) -> None:
    with runtime.db.session() as session:
        for pool in networking.list_pools(session, REGION):
            networking.update_pool(session, pool.id, IpPoolUpdate(reserved=RESERVED))
        plan = catalog.get_plan(session, "scout-1")
        catalog.update_plan(session, plan.id, PlanUpdate(bandwidth_mbit=CAP_MBIT))
    cluster.extra = {"CLOUDLET_TRANSFER_QUOTA_SCHEDULE": "* * * * * *",
                     "CLOUDLET_SHIELD_RECONCILE_SCHEDULE": "* * * * * *"}
    _process, url = cluster.serve()
    person = customer(runtime)
    with client(url, person) as http, host_namespace(TEST_HOST) as namespace:
        server = http.post("/api/instances", json=order(runtime, person, "bw-1.example.com")).json()
        wait_for(lambda: status_of(http, server["id"]) == "running", "the guest to run", seconds=BOOT_SECONDS)
        address = http.get(f"/api/instances/{server['id']}").json()["main_ip"]
        [record] = http.get("/api/shield/ips").json()
        assert http.get(f"/api/shield/ips/{record['id']}/bandwidth").json()["cap_mbit"] == CAP_MBIT

        name = guest_name(runtime, server["id"])
        assert node.bandwidth(name) == CAP_MBIT
        capped = transfer_mbit(namespace, address)
        assert 0.6 * CAP_MBIT <= capped <= 1.3 * CAP_MBIT, capped
        # what the guest sends: shaped by libvirt, or policed by nftables, whose bucket lets at most a second's
        # worth and a burst through at once; nor may the policer starve the transfer
        count, seconds = download(namespace, address)
        rate, burst = firewall.police_rates(CAP_MBIT)
        assert seconds >= 0.9 * (count - rate - burst) / rate, (count, seconds)
        sent = mbit(count, seconds)
        assert sent >= 0.4 * CAP_MBIT, sent

        with runtime.db.session() as session:
            catalog.update_plan(session, plan.id, PlanUpdate(bandwidth_mbit=None))
        wait_for(lambda: node.bandwidth(name) is None, "the quota round to lift the guest's cap", seconds=30)
        uncapped = transfer_mbit(namespace, address)
        assert uncapped > 2 * CAP_MBIT, (capped, uncapped)
        wait_for(lambda: mbit(*download(namespace, address)) > 4 * CAP_MBIT, "the firewall round to lift the guest's "
                 "outbound cap", seconds=30)
        print(f"bulk transfer to the guest: {capped:.2f} Mbit/s capped at {CAP_MBIT}, {uncapped:.1f} uncapped; "
              f"from it: {sent:.2f} capped")

        http.request("DELETE", f"/api/instances/{server['id']}", json={"mode": "immediate"})
        wait_for(lambda: status_of(http, server["id"]) == "gone", "the deletion", seconds=DELETION_SECONDS)
