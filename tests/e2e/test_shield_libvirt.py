"""Shield with real packets: a customer's rules, set through the API, are enforced by this machine's kernel on the
path to a real guest. A test host in a network namespace of its own, plugged into the guests' isolated bridge
with a documentation address of the region's pool that no guest is given, knocks on the tiny guest's two TCP
services (ports 8080 and 9090, each answering one line). What reached the guest is ranked by source (placed by
a GeoIP database of the test's) and port, a rate-limited source is cut at its limit, the table holds through a
guest reboot and is written again after it is flushed behind Cloudlet's back."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from cloudlet.drivers.libvirt import firewall, host
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
    idle,
    node,
    order,
    status_of,
    tiny_image,
)
from tests.geoip import write_databases
from tests.integration.test_worker import wait_for

pytestmark = [pytest.mark.long(seconds=120), pytest.mark.engines("sqlite")]

__all__ = ["cluster", "node", "tiny_image"]

TEST_HOST = "203.0.113.250"
# the other e2e tests (each with a database of its own) hand out addresses of the same range on the same bridge:
# this test's guest takes one of 203.0.113.200-207, and the test host's lies in a reserved block
RESERVED = ["203.0.113.0/25", "203.0.113.128/26", "203.0.113.192/29", "203.0.113.208/28", "203.0.113.224/27"]
BOOT_SECONDS = 180
KNOCK = textwrap.dedent("""
    import socket, sys
    try:
        with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=2) as c:
            c.settimeout(2)
            sys.exit(0 if c.recv(16).startswith(b"hi") else 1)
    except OSError:
        sys.exit(1)
""")


@contextmanager
def host_namespace(address: str) -> Iterator[str]:
    """A network namespace on the guests' bridge holding address (a reserved one of the region's pool); its name."""
    tag = uuid.uuid4().hex[:6]
    namespace, outside = f"e2e-fw-{tag}", f"fwt{tag}"

    def run(*command: str) -> None:
        subprocess.run(command, check=True, capture_output=True, timeout=30)

    try:
        run("ip", "netns", "add", namespace)
        run("ip", "link", "add", outside, "type", "veth", "peer", "name", "eth0", "netns", namespace)
        run("ip", "link", "set", outside, "master", host.NETWORK_NAME, "up")
        run("ip", "-n", namespace, "addr", "add", f"{address}/24", "dev", "eth0")
        run("ip", "-n", namespace, "link", "set", "eth0", "up")
        yield namespace
    finally:
        subprocess.run(["ip", "link", "del", outside], capture_output=True, timeout=30, check=False)
        subprocess.run(["ip", "netns", "del", namespace], capture_output=True, timeout=30, check=False)


@pytest.fixture
def test_host() -> Iterator[str]:
    """The test host's namespace, holding TEST_HOST."""
    with host_namespace(TEST_HOST) as namespace:
        yield namespace


def answers(namespace: str, address: str, port: int) -> bool:
    """Whether the guest's service at address:port answers the test host."""
    knock = subprocess.run(["ip", "netns", "exec", namespace, sys.executable, "-c", KNOCK, address, str(port)],
                           capture_output=True, timeout=30, check=False)
    return knock.returncode == 0


TRIES = textwrap.dedent("""
    import socket, sys, time
    address, port, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    answered = tried = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        tried += 1
        try:
            with socket.create_connection((address, port), timeout=0.4) as c:
                c.settimeout(2)
                answered += c.recv(16).startswith(b"hi")
        except OSError:
            pass
    print(answered, tried)
""")


def tries(namespace: str, address: str, port: int, *, seconds: float) -> tuple[int, int]:
    """New connections to the guest's service, one after another for so many seconds: (answered, tried)."""
    done = subprocess.run(["ip", "netns", "exec", namespace, sys.executable, "-c", TRIES, address, str(port),
                           str(seconds)], capture_output=True, text=True, timeout=60, check=True)
    answered, tried = done.stdout.split()
    return int(answered), int(tried)


def table(name: str) -> str:
    """The node's firewall table (this test's control plane's) as nft lists it."""
    return subprocess.run(["nft", "list", "table", "inet", name], capture_output=True, text=True, timeout=30,
                          check=True).stdout


def policy_drops(name: str, address: str) -> int:
    """Packets the inbound policy of the address's firewall has dropped, by the node's counter."""
    return firewall.hits(table=name)[address].policy[0]


def settled(http: httpx.Client, url: str) -> dict[str, Any]:
    """The IP record once the node enforces its latest change."""
    wait_for(lambda: http.get(url).json()["status"] == "active", "the node to enforce the change", seconds=30)
    found: dict[str, Any] = http.get(url).json()
    return found


def test_rules_and_policy_set_through_the_api_hold_in_the_kernel(
        runtime: Runtime, node: LibvirtDriver, cluster: GuestCluster, test_host: str, tmp_path: Path) -> None:
    with runtime.db.session() as session:
        for pool in networking.list_pools(session, REGION):
            networking.update_pool(session, pool.id, IpPoolUpdate(reserved=RESERVED))
    name = runtime.settings.shield_table  # the guests' firewall table of this test's control plane
    country_db, asn_db = write_databases(tmp_path)
    cluster.extra = {"CLOUDLET_SHIELD_RECONCILE_SCHEDULE": "* * * * * *",
                     "CLOUDLET_SHIELD_VISIBILITY_SCHEDULE": "* * * * * *",
                     "CLOUDLET_GEOIP_COUNTRY_DB": str(country_db), "CLOUDLET_GEOIP_ASN_DB": str(asn_db)}
    _process, url = cluster.serve()
    person = customer(runtime)
    with client(url, person) as http:
        server = http.post("/api/instances", json=order(runtime, person, "fw-1.example.com")).json()
        wait_for(lambda: status_of(http, server["id"]) == "running", "the guest to run", seconds=BOOT_SECONDS)
        address = http.get(f"/api/instances/{server['id']}").json()["main_ip"]
        wait_for(lambda: answers(test_host, address, 8080), "the guest's service to answer", seconds=60)
        [record] = http.get("/api/shield/ips").json()
        ip = f"/api/shield/ips/{record['id']}"
        assert answers(test_host, address, 9090)
        web = {"action": "allow", "protocol": "tcp", "dst_port": 8080}
        assert http.post(f"{ip}/rules", json=web).status_code == 201
        assert http.put(f"{ip}/policy", json={"default_in": "block"}).status_code == 200
        settled(http, ip)
        assert answers(test_host, address, 8080) and not answers(test_host, address, 9090)
        profile = http.get(ip).json()  # what the node's kernel counted: the allowed SYN, the refused ones
        assert profile["rules"][0]["hits"]["packets"] >= 1 and profile["policy_hits"]["packets"] >= 1

        # what reached the address, sampled from the kernel's counters every second here, ranked, and placed
        # by the test's GeoIP databases (203.0.113.0/24 is "JP", AS64501)
        for _ in range(12):
            assert answers(test_host, address, 8080)
        wait_for(lambda: any(item["ip"] == TEST_HOST and item["packets"] >= 12 * 3 for item in
                             http.get(f"{ip}/visibility/top-ips").json()["items"]),
                 "the sampler to count the test host", seconds=30)
        top = http.get(f"{ip}/visibility/top-ips").json()["items"][0]
        assert (top["ip"], top["country"], top["asn"]) == (TEST_HOST, "JP", 64501)
        assert http.get(f"{ip}/visibility/countries").json()["items"][0]["country"] == "JP"
        assert http.get(f"{ip}/visibility/top-asns").json()["items"][0]["asn"] == 64501
        ports = http.get(f"{ip}/visibility/ports").json()["items"]
        assert (ports[0]["protocol"], ports[0]["port"]) == ("tcp", 8080)
        assert any(point["pps"] > 0 for point in http.get(f"{ip}/visibility/pps").json()["points"])
        assert any((item["ip"], item["port"]) == (TEST_HOST, 9090)  # the policy refused 9090 above
                   for item in http.get(f"{ip}/visibility/dropped").json()["items"])

        # a source over its rate limit is cut: 1 new connection a second to 9090, tried for 4 seconds
        limited = http.post(f"{ip}/rules", json={"action": "allow", "protocol": "tcp", "dst_port": 9090,
                                                 "rate_limit": 1})
        assert limited.status_code == 201, limited.text
        settled(http, ip)
        answered, tried = tries(test_host, address, 9090, seconds=4.0)
        assert 1 <= answered <= 1 + 4 + 1 < tried, (answered, tried)  # its burst, then one a second
        limit_drops = firewall.traffic(table=name)[address].dropped
        assert limit_drops[(TEST_HOST, "tcp", 9090)].packets >= tried - answered
        assert http.delete(f"{ip}/rules/{limited.json()['id']}").status_code == 204
        settled(http, ip)

        blocked = http.post(f"{ip}/rules", json={"action": "block", "protocol": "any", "priority": 1,
                                                 "src_cidr": f"{TEST_HOST}/32"})
        assert blocked.status_code == 201, blocked.text
        settled(http, ip)
        assert not answers(test_host, address, 8080)  # the first rule now: this source is blocked

        assert http.delete(f"{ip}/rules/{blocked.json()['id']}").status_code == 204
        settled(http, ip)
        assert answers(test_host, address, 8080)

        # the firewall is the node's, not the guest's: it holds through a reboot (its policy counter shows that
        # the refusal was the firewall's, not a service still starting)
        restarted = http.post(f"/api/instances/{server['id']}/power/restart")
        assert restarted.status_code in (200, 202), restarted.text
        idle(http, server["id"])  # the restart's action ends once the guest has booted again
        wait_for(lambda: answers(test_host, address, 8080), "the guest's service back after its restart", seconds=60)
        before = policy_drops(name, address)
        assert not answers(test_host, address, 9090)
        assert policy_drops(name, address) > before

        # a table flushed behind Cloudlet's back is written again by the reconciler (every second here)
        subprocess.run(["nft", "flush", "table", "inet", name], capture_output=True, timeout=30, check=True)
        wait_for(lambda: address in firewall.hits(table=name), "the reconciler to write the table again",
                 seconds=30)
        before = policy_drops(name, address)
        assert not answers(test_host, address, 9090) and policy_drops(name, address) > before

        assert http.put(f"{ip}/policy", json={"default_in": "allow"}).status_code == 200
        settled(http, ip)
        wait_for(lambda: answers(test_host, address, 9090), "port 9090 to answer once allowed", seconds=30)
        http.request("DELETE", f"/api/instances/{server['id']}", json={"mode": "immediate"})
        wait_for(lambda: status_of(http, server["id"]) == "gone", "the deletion", seconds=DELETION_SECONDS)
        wait_for(lambda: "jump" not in table(name), "the address's firewall to leave the node", seconds=30)
