"""Concurrent creates racing for the last room on a node and for the last addresses of a pool.

Each create pays, places and addresses in one transaction: the ones that find no room or no
address answer 503 and leave nothing behind (no charge, no reservation, no address).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from cloudlet.networking import service as networking
from cloudlet.networking.schemas import IpPoolUpdate
from cloudlet.nodes import service as nodes
from cloudlet.nodes.schemas import NodeUpdate, Resources
from tests.cloud import Cloud
from tests.integration.test_instances import order

RACERS = 8


def race(cloud: Cloud, count: int) -> list[httpx.Response]:
    """count creates sent at once, each with its own hostname."""
    client = cloud.client()

    def create(n: int) -> httpx.Response:
        return client.post("/api/instances", json=order(cloud, hostname=f"racer-{n}.example.com"))

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(create, range(count)))


def outcome(answers: list[httpx.Response]) -> dict[int, int]:
    """How many answers of each status."""
    found: dict[int, int] = {}
    for answer in answers:
        found[answer.status_code] = found.get(answer.status_code, 0) + 1
    return found


def test_only_as_many_creates_as_the_node_has_room_for_succeed(cloud: Cloud) -> None:
    with cloud.runtime.db.session() as session:  # room for three 1 GiB servers, memory not overcommitted
        nodes.update_node(session, cloud.node_id, NodeUpdate(capacity=Resources(vcpu=64, memory_mib=3072,
                                                                                 disk_gib=1000)))
    before = cloud.balance()
    answers = race(cloud, RACERS)
    assert outcome(answers) == {201: 3, 503: RACERS - 3}, [a.text for a in answers]
    refused: dict[str, Any] = next(a.json() for a in answers if a.status_code == 503)
    assert "room" in refused["message"]
    with cloud.runtime.db.session(write=False) as session:
        node = nodes.get_node(session, cloud.node_id)
    assert node.used.memory_mib == 3072 and node.reservations == 3
    assert cloud.balance() == before - 3 * 600
    made = {a.json()["main_ip"] for a in answers if a.status_code == 201}
    assert len(made) == 3 and len(cloud.client().get("/api/instances").json()) == 3


def test_no_address_is_handed_out_twice_when_the_pool_runs_out(cloud: Cloud) -> None:
    with cloud.runtime.db.session() as session:  # a /29 whose gateway and three reserved leave two addresses
        pool = networking.list_pools(session, "dc1")[0]
        networking.update_pool(session, pool.id, IpPoolUpdate(cidr="203.0.113.8/29", gateway="203.0.113.9",
                                                           reserved=["203.0.113.10", "203.0.113.11", "203.0.113.12"]))
    before = cloud.balance()
    answers = race(cloud, 6)
    assert outcome(answers) == {201: 2, 503: 4}, [a.text for a in answers]
    addresses = sorted(a.json()["main_ip"] for a in answers if a.status_code == 201)
    assert addresses == ["203.0.113.13", "203.0.113.14"]
    assert all(a.json()["code"] == "NO_FREE_ADDRESS" for a in answers if a.status_code == 503)
    assert cloud.balance() == before - 2 * 600
    with cloud.runtime.db.session(write=False) as session:
        assert nodes.get_node(session, cloud.node_id).reservations == 2
