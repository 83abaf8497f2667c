"""Addresses out of a region's IP pools: allocation, release, reverse DNS, and the catalogue's counts."""

from __future__ import annotations

import threading

import pytest

from cloudlet.catalog import service as catalog
from cloudlet.catalog.schemas import RegionCreate
from cloudlet.kit.errors import Invalid, NotFound, Unavailable
from cloudlet.networking import repository
from cloudlet.networking import service as networking
from cloudlet.networking.schemas import IpFamily, IpPoolCreate, IpPoolUpdate
from cloudlet.surfaces.deps import Runtime
from tests.conftest import Api
from tests.helpers import make_user


@pytest.fixture
def region(runtime: Runtime) -> str:
    """Region "ams" with a small IPv4 pool (gateway .1, .2 reserved) and an IPv6 /64."""
    with runtime.db.session() as session:
        catalog.create_region(session, RegionCreate(code="ams", name="Amsterdam", country="NL"))
        networking.create_pool(session, IpPoolCreate(region="ams", cidr="198.51.100.0/29", gateway="198.51.100.1",
                                                  reserved=["198.51.100.2"]))
        networking.create_pool(session, IpPoolCreate(region="ams", cidr="2001:db8:1::/64", gateway="2001:db8:1::1"))
    return "ams"


def test_an_allocation_carries_what_the_guest_needs_and_skips_gateway_and_reserved(
        runtime: Runtime, region: str) -> None:
    with runtime.db.session() as session:
        first = networking.allocate(session, region, "inst-1", hostname="web1.example.com")
    assert first.address == "198.51.100.3"  # .0 network, .1 gateway, .2 reserved
    assert (first.family, first.prefix_length, first.gateway, first.owner) == (
        IpFamily.IPV4, 29, "198.51.100.1", "inst-1")
    assert first.rdns == "web1.example.com"
    assert first.reverse_pointer == "3.100.51.198.in-addr.arpa"
    with runtime.db.session() as session:
        others = [networking.allocate(session, region, f"inst-{n}").address for n in range(2, 5)]
        with pytest.raises(Unavailable) as full:
            networking.allocate(session, region, "inst-5")
    # .7 is the broadcast address: a /29 has .3-.6 left after gateway and reserved
    assert others == ["198.51.100.4", "198.51.100.5", "198.51.100.6"]
    assert full.value.status == 503 and full.value.code == "NO_FREE_ADDRESS"


def test_allocating_again_for_the_same_owner_returns_the_same_address(runtime: Runtime, region: str) -> None:
    with runtime.db.session() as session:
        first = networking.allocate(session, region, "inst-1")
    with runtime.db.session() as session:
        again = networking.allocate(session, region, "inst-1")
        assert again.address == first.address
        assert [a.address for a in networking.allocations(session, "inst-1")] == [first.address]


def test_release_frees_the_address_for_the_next_owner_and_is_idempotent(runtime: Runtime, region: str) -> None:
    with runtime.db.session() as session:
        first = networking.allocate(session, region, "inst-1", hostname="web1.example.com")
        networking.allocate(session, region, "inst-1", IpFamily.IPV6)
        networking.allocate(session, region, "inst-2")
    with runtime.db.session() as session:
        assert sorted(networking.release(session, "inst-1")) == ["198.51.100.3", "2001:db8:1::2"]
    with runtime.db.session() as session:
        assert networking.release(session, "inst-1") == []
        assert networking.allocations(session, "inst-1") == []
        with pytest.raises(NotFound):
            networking.get_allocation(session, first.address)
        reused = networking.allocate(session, region, "inst-3")
    assert reused.address == first.address
    assert reused.rdns is None  # the old owner's PTR name went with the release


def test_ipv6_pools_allocate_sequentially_without_enumerating_the_network(runtime: Runtime, region: str) -> None:
    with runtime.db.session() as session:
        one = networking.allocate(session, region, "inst-1", "ipv6", hostname="six.example.net")
        two = networking.allocate(session, region, "inst-2", IpFamily.IPV6)
    assert (one.address, two.address) == ("2001:db8:1::2", "2001:db8:1::3")
    assert (one.family, one.prefix_length, one.gateway, one.rdns) == (
        IpFamily.IPV6, 64, "2001:db8:1::1", "six.example.net")
    assert one.reverse_pointer.endswith(".8.b.d.0.1.0.0.2.ip6.arpa")


def test_unknown_regions_families_and_inactive_pools(runtime: Runtime, region: str) -> None:
    with runtime.db.session() as session:
        with pytest.raises(Invalid) as unknown:
            networking.allocate(session, "nowhere", "inst-1")
        assert unknown.value.code == "LOCATION_NOT_FOUND"
        with pytest.raises(Invalid) as family:
            networking.allocate(session, region, "inst-1", "ipv5")
        assert family.value.field == "family"
        with pytest.raises(Invalid):
            networking.allocate(session, region, " ")
        pool = next(p for p in networking.list_pools(session, region) if p.version == 4)
        networking.update_pool(session, pool.id, IpPoolUpdate(is_active=False))
        with pytest.raises(Unavailable):
            networking.allocate(session, region, "inst-1")


def test_reverse_dns_names_are_checked_host_names(runtime: Runtime, region: str) -> None:
    with runtime.db.session() as session:
        plain = networking.allocate(session, region, "inst-1", hostname="web1")
        assert plain.rdns is None  # a bare label is no PTR name
        named = networking.set_rdns(session, plain.address, "Mail.Example.COM.")
        assert named.rdns == "mail.example.com"
        for bad in ("-mail.example.com", "mail..example.com", "x" * 64 + ".example.com", "203.0.113.9",
                    "mail_1.example.com", "single", "a." * 127 + "com"):
            with pytest.raises(Invalid) as refused:
                networking.set_rdns(session, plain.address, bad)
            assert refused.value.field == "rdns"
        assert networking.get_allocation(session, plain.address).rdns == "mail.example.com"
        assert networking.set_rdns(session, plain.address, None).rdns is None
        with pytest.raises(NotFound):
            networking.set_rdns(session, "198.51.100.6", "free.example.com")  # not allocated
        with pytest.raises(Invalid):
            networking.set_rdns(session, "not-an-address", "x.example.com")


def test_available_ips_in_the_catalogue_follow_the_allocations(api: Api, runtime: Runtime, region: str) -> None:
    client = api.as_(make_user(runtime, "alice@example.com").token)

    def available() -> int:
        locations = client.get("/api/v1/vps/locations").json()["data"]["locations"]
        return int(next(loc for loc in locations if loc["code"] == region)["available_ips"])

    assert available() == 4
    with runtime.db.session() as session:
        networking.allocate(session, region, "inst-1")
        networking.allocate(session, region, "inst-2")
        networking.allocate(session, region, "inst-2", IpFamily.IPV6)  # IPv6 is not counted
    assert available() == 2
    with runtime.db.session() as session:
        networking.release(session, "inst-1")
    assert available() == 3


def test_concurrent_allocations_never_hand_out_an_address_twice(runtime: Runtime) -> None:
    with runtime.db.session() as session:
        catalog.create_region(session, RegionCreate(code="fra", name="Frankfurt", country="DE"))
        # a /28: .1-.14 usable, less the gateway and two reserved = 11 free
        networking.create_pool(session, IpPoolCreate(region="fra", cidr="192.0.2.0/28", gateway="192.0.2.1",
                                                  reserved=["192.0.2.13/32", "192.0.2.14"]))
    callers = 24
    start = threading.Barrier(callers)
    addresses: list[str] = []
    refused: list[Unavailable] = []
    failures: list[BaseException] = []
    lock = threading.Lock()

    def create(n: int) -> None:
        start.wait()
        try:
            with runtime.db.session() as session:
                address = networking.allocate(session, "fra", f"inst-{n}").address
            with lock:
                addresses.append(address)
        except Unavailable as exc:
            with lock:
                refused.append(exc)
        except BaseException as exc:  # reported by the assertion below
            with lock:
                failures.append(exc)

    threads = [threading.Thread(target=create, args=(n,)) for n in range(callers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert failures == []
    assert len(addresses) == 11
    assert sorted(addresses, key=lambda a: int(a.rsplit(".", 1)[1])) == [f"192.0.2.{n}" for n in range(2, 13)]
    assert len(refused) == callers - 11
    with runtime.db.session(write=False) as session:
        pool = networking.list_pools(session, "fra")[0]
        assert (pool.allocated, pool.available) == (11, 0)


def test_an_address_taken_meanwhile_is_refused_by_the_database_and_the_transaction_goes_on(
        runtime: Runtime, region: str) -> None:
    with runtime.db.session() as session:
        taken = networking.allocate(session, region, "inst-1")
    with runtime.db.session() as session:
        # what a racing allocator without the pool lock would try: the unique address refuses it in a
        # savepoint, so the caller's transaction stays usable and moves on to the next address
        assert repository.try_insert(session, taken.pool_id, taken.address, "inst-2") is None
        assert networking.allocate(session, region, "inst-2").address == "198.51.100.4"
    with runtime.db.session(write=False) as session:
        assert networking.get_allocation(session, taken.address).owner == "inst-1"


def test_concurrent_ipv6_allocations_are_distinct(runtime: Runtime, region: str) -> None:
    callers = 12
    start = threading.Barrier(callers)
    addresses: list[str] = []
    lock = threading.Lock()

    def create(n: int) -> None:
        start.wait()
        with runtime.db.session() as session:
            address = networking.allocate(session, region, f"inst-{n}", IpFamily.IPV6).address
        with lock:
            addresses.append(address)

    threads = [threading.Thread(target=create, args=(n,)) for n in range(callers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert sorted(addresses) == sorted(f"2001:db8:1::{n:x}" for n in range(2, 2 + callers))
