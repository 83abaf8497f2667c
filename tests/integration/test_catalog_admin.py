"""The operator's catalogue: admin CRUD on Shardlyn's /v1/admin, IP pool arithmetic, and `cloudlet catalog`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cloudlet.billing import pricing
from cloudlet.catalog import service as catalog
from cloudlet.cli.catalog import seed_default
from cloudlet.cli.main import app as cli
from cloudlet.networking import service as networking
from cloudlet.networking.models import IpAllocation
from cloudlet.surfaces.deps import Runtime
from tests.conftest import Api
from tests.helpers import Person, make_user


@pytest.fixture
def admin(runtime: Runtime) -> Person:
    return make_user(runtime, "root@example.com", admin=True)


@pytest.fixture
def region(api: Api, admin: Person) -> dict:
    reply = api.as_(admin.token).post("/v1/admin/regions", json={
        "code": "osl", "name": "Oslo, Norway", "country": "no", "flag": "\U0001f1f3\U0001f1f4"})
    assert reply.status_code == 201, reply.text
    return reply.json()


def test_only_administrators_manage_the_catalogue(api: Api, runtime: Runtime, admin: Person) -> None:
    user = make_user(runtime, "user@example.com")
    for path in ("/v1/admin/plans", "/v1/admin/regions", "/v1/admin/os-templates", "/v1/admin/billing-cycles",
                 "/v1/admin/exchange-rates", "/v1/admin/project-prices", "/v1/admin/ip-pools",
                 "/v1/admin/plan-categories"):
        assert api.as_(user.token).get(path).status_code == 403, path
        assert api.get(path).status_code == 401, path
        assert api.as_(admin.token).get(path).status_code == 200, path
    denied = api.as_(user.token).post("/v1/admin/regions", json={"code": "x", "name": "X", "country": "US"})
    assert denied.status_code == 403
    assert denied.json() == {"error": "Administrator access is required."}


def test_plan_crud(api: Api, runtime: Runtime, admin: Person, region: dict) -> None:
    client = api.as_(admin.token)
    assert client.post("/v1/admin/plan-categories", json={"code": "standard", "name": "Standard"}).status_code == 201
    created = client.post("/v1/admin/plans", json={
        "code": "scout-2", "name": "Scout 2", "category": "standard", "vcpu": 2, "ram_mb": 4096, "disk_gb": 60,
        "bandwidth_gb": 2000, "monthly_price": "12.50"})
    assert created.status_code == 201, created.text
    plan = created.json()
    assert (plan["monthly_price_cents"], plan["monthly_price"], plan["hourly_price"]) == (1250, "12.50", "0.0171")
    assert plan["regions"] == ["osl"] and plan["is_active"] is True

    again = client.post("/v1/admin/plans", json={**plan, "monthly_price": None, "monthly_price_cents": 100})
    assert again.status_code == 409
    floaty = client.post("/v1/admin/plans", json={"code": "f", "name": "F", "vcpu": 1, "ram_mb": 512, "disk_gb": 10,
                                                  "monthly_price": 7.5})
    assert floaty.status_code == 400 and "decimal string" in floaty.json()["error"]
    priceless = client.post("/v1/admin/plans", json={"code": "f", "name": "F", "vcpu": 1, "ram_mb": 512,
                                                     "disk_gb": 10})
    assert priceless.status_code == 400
    nowhere = client.post("/v1/admin/plans", json={"code": "f", "name": "F", "vcpu": 1, "ram_mb": 512,
                                                   "disk_gb": 10, "monthly_price_cents": 100, "regions": ["mars"]})
    assert nowhere.status_code == 400 and "mars" in nowhere.json()["error"]

    changed = client.put(f"/v1/admin/plans/{plan['id']}", json={"monthly_price_cents": 1300, "is_active": False})
    assert changed.status_code == 200
    assert (changed.json()["monthly_price"], changed.json()["name"], changed.json()["is_active"]) == (
        "13.00", "Scout 2", False)
    assert client.get("/v1/billing/plans").json()["plans"] == []  # retired plans are not on sale
    assert [p["code"] for p in client.get("/v1/admin/plans").json()["plans"]] == ["scout-2"]
    assert client.put("/v1/admin/plans/424242", json={"name": "x"}).status_code == 404

    assert client.delete(f"/v1/admin/plans/{plan['id']}").status_code == 204
    assert client.get("/v1/admin/plans").json()["plans"] == []
    assert client.delete(f"/v1/admin/plans/{plan['id']}").status_code == 404


def test_region_cycle_template_and_rate_crud(api: Api, admin: Person, region: dict) -> None:
    client = api.as_(admin.token)
    assert region["country"] == "NO" and region["available_ips"] == 0
    assert client.post("/v1/admin/regions", json={"code": "osl", "name": "Again", "country": "NO"}).status_code == 409
    closed = client.put(f"/v1/admin/regions/{region['id']}", json={"is_available": False}).json()
    assert closed["is_available"] is False and closed["name"] == "Oslo, Norway"
    assert api.get("/api/catalog/regions").json()[0]["is_available"] is False

    cycle = client.post("/v1/admin/billing-cycles", json={"code": "quarterly", "name": "Quarterly", "months": 3,
                                                           "discount_bps": 250})
    assert cycle.status_code == 201
    assert client.post("/v1/admin/billing-cycles", json={"code": "bad", "name": "Bad", "months": 1,
                                                         "discount_bps": 10001}).status_code == 400
    assert client.put(f"/v1/admin/billing-cycles/{cycle.json()['id']}", json={"discount_bps": 300}).json()[
        "discount_bps"] == 300
    assert api.get("/api/catalog/billing-cycles").json()[0]["discount_percent"] == 3
    assert client.delete(f"/v1/admin/billing-cycles/{cycle.json()['id']}").status_code == 204

    template = client.post("/v1/admin/os-templates", json={
        "code": "windows-2022", "family": "windows", "name": "Windows Server 2022", "is_windows": True,
        "min_balance": "20.00"})
    assert template.status_code == 201
    assert template.json()["min_balance_cents"] == 2000 and template.json()["image_id"] is None
    no_such_image = client.put(f"/v1/admin/os-templates/{template.json()['id']}", json={"image_id": 7})
    assert no_such_image.status_code == 400 and "no image 7" in no_such_image.json()["error"]
    listed = {t["code"]: t for t in client.get("/v1/admin/os-templates").json()["os_templates"]}
    assert listed["windows-2022"]["image_id"] is None
    assert client.delete(f"/v1/admin/os-templates/{template.json()['id']}").status_code == 204

    rate = client.put("/v1/admin/exchange-rates/sar", json={"rate": "3.7512", "source": "central bank"})
    assert rate.status_code == 200
    assert rate.json()["currency"] == "SAR" and rate.json()["rate"] == "3.7512"
    assert client.put("/v1/admin/exchange-rates/USD", json={"rate": "2"}).status_code == 400
    assert client.put("/v1/admin/exchange-rates/XYZ", json={"rate": "2"}).status_code == 400
    assert client.put("/v1/admin/exchange-rates/EGP", json={"rate": "-1"}).status_code == 400
    listed = client.get("/v1/admin/exchange-rates").json()
    assert [r["currency"] for r in listed["exchange_rates"]] == ["USD", "SAR"]
    assert client.delete("/v1/admin/exchange-rates/SAR").status_code == 204
    assert api.get("/api/catalog/plans", params={"currency": "SAR"}).status_code == 422


def test_project_prices(api: Api, runtime: Runtime, admin: Person, region: dict) -> None:
    client = api.as_(admin.token)
    customer = make_user(runtime, "customer@example.com")
    client.post("/v1/admin/plan-categories", json={"code": "standard", "name": "Standard"})
    plan = client.post("/v1/admin/plans", json={"code": "p1", "name": "P1", "vcpu": 1, "ram_mb": 1024, "disk_gb": 20,
                                                "monthly_price_cents": 1000}).json()
    both = client.post("/v1/admin/project-prices", json={"project_id": customer.project_id, "plan_id": plan["id"],
                                                         "discount_bps": 100, "monthly_price": "5.00"})
    assert both.status_code == 400
    ghost = client.post("/v1/admin/project-prices", json={"project_id": 987654, "plan_id": plan["id"],
                                                          "discount_bps": 100})
    assert ghost.status_code == 404
    made = client.post("/v1/admin/project-prices", json={"project_id": customer.project_id, "plan_id": plan["id"],
                                                         "monthly_price": "7.00", "note": "partner"})
    assert made.status_code == 201, made.text
    assert made.json()["kind"] == "fixed" and made.json()["monthly_price_cents"] == 700
    assert client.post("/v1/admin/project-prices", json={"project_id": customer.project_id, "plan_id": plan["id"],
                                                         "discount_bps": 100}).status_code == 409
    mine = api.as_(customer.token).get("/api/me/catalog/plans").json()
    assert mine["categories"][0]["packages"][0]["monthly_price"] == "7.00"
    switched = client.put(f"/v1/admin/project-prices/{made.json()['id']}", json={"discount_bps": 5000}).json()
    assert (switched["kind"], switched["discount_bps"], switched["monthly_price_cents"]) == ("discount", 5000, None)
    assert switched["note"] == "partner"
    mine = api.as_(customer.token).get("/api/me/catalog/plans").json()
    assert mine["categories"][0]["packages"][0]["monthly_price"] == "5.00"
    listed = client.get("/v1/admin/project-prices", params={"project_id": customer.project_id}).json()
    assert [p["plan_code"] for p in listed["project_prices"]] == ["p1"]
    assert client.delete(f"/v1/admin/project-prices/{made.json()['id']}").status_code == 204
    mine = api.as_(customer.token).get("/api/me/catalog/plans").json()
    assert mine["categories"][0]["packages"][0]["monthly_price"] == "10.00"


def test_ip_pools_count_usable_reserved_and_allocated_addresses(
        api: Api, runtime: Runtime, admin: Person, region: dict) -> None:
    client = api.as_(admin.token)
    pool = client.post("/v1/admin/ip-pools", json={
        "region": "osl", "cidr": "198.51.100.0/24", "gateway": "198.51.100.1",
        "reserved": ["198.51.100.2", "198.51.100.240/28", "198.51.100.1"]})
    assert pool.status_code == 201, pool.text
    body = pool.json()
    # 254 usable (.1-.254); the gateway, .2 and .240-.254 of the /28 (its .255 is the broadcast) are reserved
    assert (body["usable"], body["reserved_count"], body["allocated"], body["available"]) == (254, 17, 0, 237)
    small = client.post("/v1/admin/ip-pools", json={"region": "osl", "cidr": "192.0.2.8/29"}).json()
    assert (small["usable"], small["available"]) == (6, 6)
    assert api.as_(admin.token).get("/api/v1/vps/locations").json()["data"]["locations"][0]["available_ips"] == 243

    overlap = client.post("/v1/admin/ip-pools", json={"region": "osl", "cidr": "198.51.100.128/25"})
    assert overlap.status_code == 409
    outside = client.post("/v1/admin/ip-pools", json={"region": "osl", "cidr": "192.0.2.64/26",
                                                      "gateway": "192.0.2.1"})
    assert outside.status_code == 400 and "not inside" in outside.json()["error"]
    sloppy = client.post("/v1/admin/ip-pools", json={"region": "osl", "cidr": "192.0.2.65/26"})
    assert sloppy.status_code == 400
    unknown = client.post("/v1/admin/ip-pools", json={"region": "mars", "cidr": "192.0.2.128/26"})
    assert unknown.status_code == 400

    with runtime.db.session() as session:
        session.add_all([IpAllocation(pool_id=body["id"], address="198.51.100.10"),
                         IpAllocation(pool_id=body["id"], address="198.51.100.11")])
    counted = client.get(f"/v1/admin/ip-pools/{body['id']}").json()
    assert (counted["allocated"], counted["available"]) == (2, 235)
    assert client.put(f"/v1/admin/ip-pools/{body['id']}", json={"cidr": "198.51.100.0/23"}).status_code == 409
    assert client.delete(f"/v1/admin/ip-pools/{body['id']}").status_code == 409
    unreserved = client.put(f"/v1/admin/ip-pools/{body['id']}", json={"reserved": []}).json()
    assert (unreserved["reserved_count"], unreserved["available"]) == (1, 251)
    assert [p["cidr"] for p in client.get("/v1/admin/ip-pools", params={"region": "osl"}).json()["ip_pools"]] == [
        "198.51.100.0/24", "192.0.2.8/29"]

    refused = client.delete(f"/v1/admin/regions/{region['id']}")  # networking names the pools, not a foreign key
    assert refused.status_code == 409 and "still has IP pools" in refused.json()["error"]
    assert client.delete(f"/v1/admin/ip-pools/{small['id']}").status_code == 204


CATALOGUE = """
regions:
  - code: fra
    name: Frankfurt, Germany
    country: DE
    flag: "\U0001f1e9\U0001f1ea"
plans:
  - code: tiny-1
    name: Tiny 1
    category: standard
    vcpu: 1
    ram_mb: 512
    disk_gb: 10
    bandwidth_gb: 500
    monthly_price: 3.10
    regions: [fra]
cycles:
  - code: monthly
    name: Monthly
    months: 1
rates:
  SAR: 3.75
templates:
  - code: debian-12
    family: debian
    name: Debian 12
    version: "12"
pools:
  - region: fra
    cidr: 192.0.2.0/25
    gateway: 192.0.2.1
    reserved: [192.0.2.2]
"""


@pytest.fixture
def cli_env(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CLOUDLET_DATABASE_URL", database_url)
    monkeypatch.setenv("CLOUDLET_DATA_DIR", str(tmp_path / "data"))
    path = tmp_path / "catalogue.yaml"
    path.write_text(CATALOGUE, encoding="utf-8")
    return path


def test_catalog_load_upserts_by_code_and_show_prints_it(cli_env: Path) -> None:
    first = CliRunner().invoke(cli, ["catalog", "load", str(cli_env)])
    assert first.exit_code == 0, first.output
    assert "plans 1 created / 0 updated" in first.output
    again = CliRunner().invoke(cli, ["catalog", "load", str(cli_env)])
    assert again.exit_code == 0, again.output
    assert "plans 0 created / 1 updated" in again.output and "rates" not in again.output

    cli_env.write_text(CATALOGUE.replace("3.10", "3.20"), encoding="utf-8")
    assert CliRunner().invoke(cli, ["catalog", "load", str(cli_env)]).exit_code == 0
    shown = CliRunner().invoke(cli, ["catalog", "show", "--json"])
    assert shown.exit_code == 0, shown.output
    data = json.loads(shown.output)
    assert [(p["code"], p["monthly_price"]) for p in data["plans"]] == [("tiny-1", "3.20")]
    assert [r["code"] for r in data["regions"]] == ["fra"]
    assert data["regions"][0]["available_ips"] == 124  # 126 usable, less gateway and one reserved
    assert [r["currency"] for r in data["exchange_rates"]] == ["USD", "SAR"]
    assert data["os_templates"][0]["code"] == "debian-12"
    assert CliRunner().invoke(cli, ["catalog", "show"]).exit_code == 0


def test_catalog_load_refuses_a_bad_file_and_changes_nothing(cli_env: Path) -> None:
    cli_env.write_text(CATALOGUE.replace("192.0.2.1\n", "10.9.9.9\n"), encoding="utf-8")
    result = CliRunner().invoke(cli, ["catalog", "load", str(cli_env)])
    assert result.exit_code == 1
    assert "not inside" in result.output
    shown = CliRunner().invoke(cli, ["catalog", "show", "--json"])
    assert '"plans": []' in shown.output  # the whole file is one transaction
    cli_env.write_text("plans:\n  - code: x\n    flavour: vanilla\n", encoding="utf-8")
    assert CliRunner().invoke(cli, ["catalog", "load", str(cli_env)]).exit_code == 1


def test_the_default_catalogue_is_seeded_once_into_an_empty_database(runtime: Runtime) -> None:
    assert seed_default(runtime.db) is True
    assert seed_default(runtime.db) is False
    with runtime.db.session(write=False) as session:
        plans = catalog.list_plans(session)
        assert {p.category for p in plans} == {"standard", "cpu-optimized"}
        assert [c.code for c in catalog.list_cycles(session)] == ["monthly", "6months", "yearly"]
        assert {r.currency for r in pricing.list_rates(session)} >= {"USD", "SAR", "EGP"}
        assert [t.family for t in catalog.list_templates(session)] == ["debian"]
        pool = networking.list_pools(session)[0]
        assert pool.cidr == "203.0.113.0/24" and pool.available == 253
