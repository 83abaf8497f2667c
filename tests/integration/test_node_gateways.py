"""Each heartbeat has every node hold the gateways of its region's address pools, so that it reaches the
guests it builds (the libvirt side is shown by the driver contract, on the real bridge)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cloudlet.catalog import service as catalog
from cloudlet.catalog.schemas import RegionCreate
from cloudlet.drivers.base import GuestFailed
from cloudlet.networking import service as networking
from cloudlet.networking.schemas import IpPoolCreate
from cloudlet.nodes import workflows as node_workflows
from tests.cloud import REGION, Cloud, WrappedDriver


def test_a_node_holds_the_gateways_of_its_regions_pools_and_no_others(cloud: Cloud) -> None:
    runtime = cloud.runtime
    assert cloud.driver.gateways == {"203.0.113.1"}  # the default pool's, from the cloud's first heartbeat
    with runtime.db.session() as session:
        catalog.create_region(session, RegionCreate(code="dc2", name="Datacenter 2", country="DE"))
        networking.create_pool(session, IpPoolCreate(region=REGION, cidr="198.51.100.0/25", gateway="198.51.100.126"))
        networking.create_pool(session, IpPoolCreate(region=REGION, cidr="2001:db8:10::/64", gateway="2001:db8:10::1"))
        networking.create_pool(session, IpPoolCreate(region=REGION, cidr="192.0.2.0/28"))  # no gateway: none held
        networking.create_pool(session, IpPoolCreate(region="dc2", cidr="192.0.2.64/26", gateway="192.0.2.65"))
    report = node_workflows.heartbeat_all(runtime.db, runtime.settings, runtime.drivers)
    assert report.ready == ["hv1"]
    assert cloud.driver.gateways == {"203.0.113.1", "198.51.100.126", "2001:db8:10::1"}


def test_a_gateway_the_node_cannot_take_does_not_make_it_unreachable(
        cloud: Cloud, node_driver: Callable[[Any], None]) -> None:
    def refuse(_gateways: frozenset[str]) -> None:
        raise GuestFailed("ip addr add 203.0.113.1/32 dev cloudlet0 failed: RTNETLINK answers: Permission denied")

    node_driver(WrappedDriver(cloud.driver, serve_gateways=refuse))
    runtime = cloud.runtime
    report = node_workflows.heartbeat_all(runtime.db, runtime.settings, runtime.drivers)
    assert report.ready == ["hv1"] and report.unreachable == []
