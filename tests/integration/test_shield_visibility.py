"""Shield's visibility views on the primary surface: the sampler reads the node's counters (the fake's, set by
the test as a node's kernel would count), keeps what arrived between readings, and the views rank it, with
country and ASN from small MMDB files of documentation ranges; without those files the two views that need
them say so. Tenancy and scopes as everywhere."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from cloudlet.drivers.base import AddressTraffic, Counted
from cloudlet.kit import clock
from cloudlet.shield import visibility
from tests.cloud import Cloud
from tests.geoip import write_databases
from tests.helpers import make_user, mint_token
from tests.integration.test_shield import enforced, served

NEVER = "0 0 1 1 *"  # the test samples when it chooses


@pytest.fixture
def settings_overrides(tmp_path: Path) -> dict[str, Any]:
    country_db, asn_db = write_databases(tmp_path)
    return {"shield_reconcile_schedule": "* * * * * *", "shield_visibility_schedule": NEVER,
            "geoip_country_db": country_db, "geoip_asn_db": asn_db}


def counted(table: int, total: int, sources: dict[str, int], ports: dict[tuple[str, int], int],
            dropped: dict[tuple[str, str, int], int]) -> AddressTraffic:
    """Counters as the node's kernel keeps them (100 bytes a packet)."""
    return AddressTraffic(table, Counted(total, total * 100),
                          {key: Counted(n, n * 100) for key, n in sources.items()},
                          {key: Counted(n, n * 100) for key, n in ports.items()},
                          {key: Counted(n, n * 100) for key, n in dropped.items()})


def test_the_views_rank_what_reached_the_address_between_readings(cloud: Cloud) -> None:
    client, record, url = served(cloud)
    client.put(f"{url}/policy", json={"default_in": "block"})
    enforced(cloud, client, url)
    table, ip = cloud.driver.tables_written, record["ip"]
    start = clock.now()
    cloud.driver.traffic[ip] = counted(table, 100, {"198.51.100.7": 60, "203.0.113.9": 30, "192.0.2.5": 10},
                                       {("tcp", 443): 70, ("udp", 53): 30}, {("192.0.2.5", "tcp", 22): 10})
    assert visibility.sample(cloud.runtime.db, cloud.runtime.drivers, start) == 1 + 3 + 2 + 1
    # a minute on: 203.0.113.9 sent 300 more, the rest nothing; only the difference is kept
    cloud.driver.traffic[ip] = counted(table, 400, {"198.51.100.7": 60, "203.0.113.9": 330, "192.0.2.5": 10},
                                       {("tcp", 443): 70, ("udp", 53): 330}, {("192.0.2.5", "tcp", 22): 10})
    assert visibility.sample(cloud.runtime.db, cloud.runtime.drivers, start + timedelta(seconds=60)) == 1 + 1 + 1
    assert visibility.sample(cloud.runtime.db, cloud.runtime.drivers, start + timedelta(seconds=120)) == 0

    top = client.get(f"{url}/visibility/top-ips", params={"period": "1h"}).json()
    assert top["total"] == {"packets": 400, "bytes": 40_000} and top["period"] == "1h"
    assert [(i["ip"], i["packets"], i["country"], i["asn"]) for i in top["items"]] == [
        ("203.0.113.9", 330, "JP", 64501), ("198.51.100.7", 60, "NL", 64500), ("192.0.2.5", 10, None, None)]
    assert top["items"][0]["share"] == 0.825
    asns = client.get(f"{url}/visibility/top-asns").json()["items"]
    assert [(i["asn"], i["name"], i["bytes"]) for i in asns] == [
        (64501, "Example Hosting", 33_000), (64500, "Example Transit", 6_000), (None, "unknown", 1_000)]
    countries = client.get(f"{url}/visibility/countries").json()["items"]
    assert [(i["country"], i["name"], i["share"]) for i in countries] == [
        ("JP", "Japan", 0.825), ("NL", "Netherlands", 0.15), (None, "unknown", 0.025)]
    ports = client.get(f"{url}/visibility/ports", params={"by": "packets"}).json()["items"]
    assert [(i["protocol"], i["port"], i["packets"]) for i in ports] == [("udp", 53, 330), ("tcp", 443, 70)]
    assert client.get(f"{url}/visibility/dropped").json()["items"] == [
        {"ip": "192.0.2.5", "protocol": "tcp", "port": 22, "packets": 10, "bytes": 1000}]
    points = client.get(f"{url}/visibility/pps").json()["points"]
    assert [(p["seconds"], p["pps"], p["bps"]) for p in points] == [(60.0, 5.0, 4000.0)]  # the first has no interval
    assert points[0]["at"].endswith("Z")

    # the node writes its table again (a rule changed): its counters start from zero, and count from there
    client.post(f"{url}/rules", json={"action": "allow", "protocol": "tcp", "dst_port": 443})
    enforced(cloud, client, url)
    cloud.driver.traffic[ip] = counted(cloud.driver.tables_written, 50, {"198.51.100.7": 50}, {("tcp", 443): 50}, {})
    visibility.sample(cloud.runtime.db, cloud.runtime.drivers, start + timedelta(seconds=180))
    top = client.get(f"{url}/visibility/top-ips").json()
    assert top["total"]["packets"] == 450 and top["items"][1] == top["items"][1] | {"ip": "198.51.100.7",
                                                                                   "packets": 110}
    assert client.get(f"{url}/visibility/top-ips", params={"period": "5m"}).json()["total"]["packets"] == 450
    assert client.get(f"{url}/visibility/top-ips", params={"period": "2h"}).status_code == 422


def test_without_the_databases_the_geographic_views_say_so(cloud: Cloud) -> None:
    client, _record, url = served(cloud)
    cloud.runtime.settings.geoip_asn_db = None
    cloud.runtime.settings.geoip_country_db = None
    for view in ("top-asns", "countries"):
        refused = client.get(f"{url}/visibility/{view}")
        assert refused.status_code == 501 and "CLOUDLET_GEOIP_" in refused.json()["message"], refused.text
    top = client.get(f"{url}/visibility/top-ips")
    assert top.status_code == 200 and top.json()["items"] == []


def test_another_projects_views_are_404_and_need_analytics_read(cloud: Cloud) -> None:
    _client, _record, url = served(cloud)
    stranger = cloud.client(make_user(cloud.runtime, "eve@example.com"))
    views = ("top-ips", "top-asns", "countries", "ports", "pps", "dropped")
    assert [stranger.get(f"{url}/visibility/{view}").status_code for view in views] == [404] * 6
    shield_only = cloud.api.as_(mint_token(cloud.runtime, cloud.customer, "shield:read", "shield:write"))
    assert [shield_only.get(f"{url}/visibility/{view}").status_code for view in views] == [403] * 6
    analyst = cloud.api.as_(mint_token(cloud.runtime, cloud.customer, "analytics:read"))
    assert [analyst.get(f"{url}/visibility/{view}").status_code for view in views] == [200] * 6
