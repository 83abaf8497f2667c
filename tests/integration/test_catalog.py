"""The catalogue as customers see it on every surface, priced from the default catalogue."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from cloudlet import catalogue_file
from cloudlet.billing import pricing
from cloudlet.billing.schemas import ProjectPriceCreate, RateSet
from cloudlet.catalog import service as catalog
from cloudlet.catalog.schemas import TemplateCreate
from cloudlet.kit import clock
from cloudlet.kit.errors import Invalid, NotFound, PaymentRequired
from cloudlet.kit.money import Money
from cloudlet.networking import service as networking
from cloudlet.networking.models import IpAllocation
from cloudlet.surfaces.deps import Runtime
from tests.conftest import Api
from tests.helpers import Person, make_user, mint_token


@pytest.fixture
def seeded(runtime: Runtime) -> Runtime:
    """A server whose catalogue is the default one a new installation starts with."""
    with runtime.db.session() as session:
        assert catalogue_file.seed_default(session) is not None
    return runtime


@pytest.fixture
def alice(seeded: Runtime) -> Person:
    return make_user(seeded, "alice@example.com")


def _package(body: dict, code: str) -> dict:
    return next(p for c in body["categories"] for p in c["packages"] if p["plan"] == code)


def _plan_id(runtime: Runtime, code: str) -> int:
    with runtime.db.session(write=False) as session:
        return catalog.get_plan(session, code).id


# ---- Evorxa (primary) ----------------------------------------------------------------------------

def test_the_public_price_list_needs_no_credential_and_prices_every_cycle(api: Api, seeded: Runtime) -> None:
    reply = api.get("/api/catalog/plans")
    assert reply.status_code == 200
    body = reply.json()
    assert body["currency"] == "USD"
    assert [c["code"] for c in body["categories"]] == ["standard", "cpu-optimized"]
    scout = _package(body, "scout-2")
    assert (scout["vcpu"], scout["ram"], scout["storage"], scout["category"]) == (2, 4, 60, "standard")
    assert scout["monthly_price"] == "12.00" and scout["monthly_price_cents"] == 1200
    assert scout["hourly_price"] == "0.0164"
    assert scout["personalised"] is False
    assert scout["pricing"]["monthly"]["price"] == "12.00"
    assert scout["pricing"]["6months"] == {"cycle": "6months", "months": 6, "discount_bps": 500,
                                           "discount_percent": 5, "price_cents": 6840, "price": "68.40",
                                           "monthly_equivalent": "11.40"}
    assert scout["pricing"]["yearly"]["price"] == "129.60"  # 12 x 12.00 less 10%
    assert scout["regions"] == ["dc1"]


def test_prices_convert_through_the_stored_rate(api: Api, seeded: Runtime) -> None:
    body = api.get("/api/catalog/plans", params={"currency": "SAR"}).json()
    assert body["currency"] == "SAR"
    assert body["exchange_rate"] == 3.75
    assert body["rate_fetched_at"] is not None
    scout = _package(body, "scout-1")
    assert scout["monthly_price"] == "22.50"  # 6.00 x 3.75
    assert scout["pricing"]["yearly"]["price_cents"] == 24300  # (72.00 less 10%) x 3.75
    egp = _package(api.get("/api/catalog/plans", params={"currency": "egp"}).json(), "scout-1")
    assert egp["monthly_price"] == "291.00"  # 6.00 x 48.50


def test_an_unknown_currency_is_refused_with_422(api: Api, seeded: Runtime) -> None:
    reply = api.get("/api/catalog/plans", params={"currency": "XYZ"})
    assert reply.status_code == 422
    assert "currency" in reply.json()["errors"]
    assert "XYZ" in reply.json()["message"]


def test_regions_cycles_and_rates_are_public(api: Api, seeded: Runtime) -> None:
    regions = api.get("/api/catalog/regions").json()
    assert regions == [{"code": "dc1", "name": "Datacenter 1", "country": "US", "flag": "\U0001f1fa\U0001f1f8",
                        "is_available": True}]
    cycles = api.get("/api/catalog/billing-cycles").json()
    assert [(c["code"], c["months"], c["discount_percent"]) for c in cycles] == [
        ("monthly", 1, 0), ("6months", 6, 5), ("yearly", 12, 10)]
    rates = api.get("/api/catalog/exchange-rates").json()
    assert rates["base"] == "USD"
    assert rates["rates"] == {"USD": 1, "EGP": 48.5, "NOK": 10.8, "SAR": 3.75}
    assert rates["fetched_at"] is not None
    assert {c["currency"] for c in rates["currencies"]} == {"USD", "SAR", "EGP", "NOK"}


def test_my_price_list_applies_my_projects_prices_only(api: Api, seeded: Runtime, alice: Person) -> None:
    bob = make_user(seeded, "bob@example.com")
    with seeded.db.session() as session:
        pricing.create_project_price(session, ProjectPriceCreate(
            project_id=alice.project_id, plan_id=_plan_id(seeded, "scout-2"), discount_bps=2000))
    assert api.get("/api/me/catalog/plans").status_code == 401
    mine = _package(api.as_(alice.token).get("/api/me/catalog/plans").json(), "scout-2")
    assert mine["personalised"] is True
    assert mine["monthly_price"] == "9.60" and mine["list_monthly_price_cents"] == 1200
    assert mine["pricing"]["yearly"]["price"] == "103.68"  # 12 x 9.60 less 10%
    theirs = _package(api.as_(bob.token).get("/api/me/catalog/plans").json(), "scout-2")
    assert theirs["personalised"] is False and theirs["monthly_price"] == "12.00"
    peek = api.as_(bob.token).get("/api/me/catalog/plans", params={"project_id": alice.project_id})
    assert peek.status_code == 404
    public = _package(api.get("/api/catalog/plans").json(), "scout-2")
    assert public["monthly_price"] == "12.00"


def test_os_templates_for_a_package_need_instances_read(api: Api, seeded: Runtime, alice: Person) -> None:
    with seeded.db.session() as session:
        catalog.create_template(session, TemplateCreate(code="windows-2022", family="windows",
                                                        name="Windows Server 2022", version="2022", is_windows=True,
                                                        min_balance="20.00", min_ram_mb=4096, min_disk_gb=40))
    scout1, scout2 = _plan_id(seeded, "scout-1"), _plan_id(seeded, "scout-2")
    path = f"/api/catalog/os-templates/{scout2}"
    assert api.get(path).status_code == 401
    assert api.as_(mint_token(seeded, alice, "wallet:read")).get(path).status_code == 403
    groups = api.as_(mint_token(seeded, alice, "instances:read")).get(path).json()
    assert [g["group"] for g in groups] == ["debian", "windows"]
    assert groups[0]["name"] == "Debian"
    assert groups[0]["templates"][0]["code"] == "debian-12-tiny"
    assert groups[1]["templates"][0]["min_balance"] == "20.00"
    small = api.as_(alice.token).get(f"/api/catalog/os-templates/{scout1}").json()
    assert [g["group"] for g in small] == ["debian"]  # Windows needs 4 GB of RAM, scout-1 has 1
    assert api.as_(alice.token).get("/api/catalog/os-templates/999999").status_code == 404
    assert api.as_(alice.token).get("/api/catalog/os-templates/99999999999").status_code == 404


# ---- CyberPanel ----------------------------------------------------------------------------------

def test_cyberpanel_plans_have_exactly_the_reference_fields(api: Api, seeded: Runtime, alice: Person) -> None:
    reply = api.as_(mint_token(seeded, alice, "vps:read")).get("/api/v1/vps/plans")
    assert reply.status_code == 200
    body = reply.json()
    assert body["success"] is True
    starter = body["data"]["plans"][0]
    assert starter == {"id": _plan_id(seeded, "scout-1"), "name": "Scout 1", "cpu_cores": 1, "ram_mb": 1024,
                       "disk_gb": 25, "bandwidth_gb": 1000, "monthly_price": "6.00", "price_hourly": "0.0082"}
    denied = api.as_(mint_token(seeded, alice, "billing:read")).get("/api/v1/vps/plans")
    assert denied.status_code == 403
    assert denied.json()["error_code"] == "INSUFFICIENT_SCOPE"


def test_cyberpanel_locations_count_free_addresses_for_real(api: Api, seeded: Runtime, alice: Person) -> None:
    client = api.as_(alice.token)
    location = client.get("/api/v1/vps/locations").json()["data"]["locations"][0]
    # 203.0.113.0/24: 254 usable, less the gateway
    assert location == {"code": "dc1", "name": "Datacenter 1", "country": "US", "available_ips": 253,
                        "is_available": True}
    with seeded.db.session() as session:
        pool = networking.list_pools(session)[0]
        session.add_all([IpAllocation(pool_id=pool.id, address=f"203.0.113.{n}", instance_id=f"i-{n}")
                         for n in (10, 11, 12)])
    assert client.get("/api/v1/vps/locations").json()["data"]["locations"][0]["available_ips"] == 250
    with seeded.db.session() as session:
        assert networking.free_addresses(session, pool.id, limit=3) == ["203.0.113.2", "203.0.113.3", "203.0.113.4"]


def test_cyberpanel_templates_say_when_they_need_a_minimum_balance(
        api: Api, seeded: Runtime, alice: Person) -> None:
    with seeded.db.session() as session:
        windows = catalog.create_template(session, TemplateCreate(
            code="windows-2022", family="windows", name="Windows Server 2022", os="Windows Server 2022",
            version="2022", is_windows=True, min_balance_cents=2000, description="Windows Server 2022"))
    templates = api.as_(alice.token).get("/api/v1/vps/templates").json()["data"]["templates"]
    assert templates[-1] == {"id": str(windows.id), "name": "Windows Server 2022", "os": "Windows Server 2022",
                             "description": "Windows Server 2022 (requires $20 min balance)"}
    assert templates[0]["name"] == "Debian 12 (tiny)"
    assert set(templates[0]) == {"id", "name", "os", "description"}


# ---- WaysCloud -----------------------------------------------------------------------------------

def test_wayscloud_lists_plans_at_both_paths_with_a_number_price(api: Api, seeded: Runtime, alice: Person) -> None:
    client = api.as_(alice.token, header="x-api-key")
    reply = client.get("/v1/vps/plans/")
    assert reply.status_code == 200
    assert client.get("/v1/vps/plans").json() == reply.json()
    first = reply.json()[0]
    assert first == {"plan_code": "scout-1", "name": "Scout 1", "vcpus": 1, "ram_gb": 1, "storage_gb": 25,
                     "bandwidth_tb": 1.0, "price": 6.0, "currency": "USD"}
    nok = client.get("/v1/vps/plans/", params={"currency": "NOK"}).json()[0]
    assert (nok["price"], nok["currency"]) == (64.8, "NOK")
    assert api.get("/v1/vps/plans/").status_code == 401


def test_wayscloud_templates_and_regions(api: Api, seeded: Runtime, alice: Person) -> None:
    client = api.as_(alice.token, header="x-api-key")
    assert client.get("/v1/vps/os-templates").json() == [
        {"id": "debian-12-tiny", "name": "Debian 12 (tiny)", "family": "debian", "version": "12",
         "is_windows": False}]
    assert client.get("/v1/vps/regions").json() == [
        {"id": "dc1", "name": "Datacenter 1", "country": "US", "available": True}]


# ---- Shardlyn ------------------------------------------------------------------------------------

def test_shardlyn_billing_plans_need_any_credential(api: Api, seeded: Runtime, alice: Person) -> None:
    assert api.get("/v1/billing/plans").status_code == 401
    plans = api.as_(alice.jwt).get("/v1/billing/plans").json()["plans"]
    assert [p["code"] for p in plans] == ["scout-1", "scout-2", "scout-4", "forge-2", "forge-4"]
    assert plans[0]["monthly_price"] == "6.00" and plans[0]["monthly_price_cents"] == 600


# ---- the pricing service billing calls -----------------------------------------------------------

def test_price_applies_the_project_price_cycle_discount_and_rate(seeded: Runtime, alice: Person) -> None:
    with seeded.db.session() as session:
        pricing.create_project_price(session, ProjectPriceCreate(
            project_id=alice.project_id, plan_id=_plan_id(seeded, "forge-2"), monthly_price="25.00"))
        quoted = pricing.price(session, "forge-2", "6months", "EGP", project_id=alice.project_id)
        assert quoted.override is not None and quoted.override.monthly_price_cents == 2500
        assert quoted.monthly_usd == 2500 and quoted.amount_usd == 14250  # 6 x 25.00 less 5%
        assert quoted.amount == 691125  # 142.50 x 48.50
        assert quoted.monthly == 121250 and quoted.list_monthly == 135800
        assert quoted.total == Money(691125, "EGP")
        assert quoted.rate == Decimal("48.5") and quoted.rate_fetched_at is not None
        assert sum(quoted.hourly_charge(h) for h in range(1, 800)) == quoted.monthly
        plain = pricing.price(session, _plan_id(seeded, "forge-2"), "monthly")
        assert (plain.amount, plain.currency, plain.override) == (2800, "USD", None)
        with pytest.raises(NotFound):
            pricing.price(session, "nope", "monthly")
        with pytest.raises(NotFound):
            pricing.price(session, "forge-2", "weekly")
        with pytest.raises(Invalid):
            pricing.price(session, "forge-2", "monthly", "GBP")


def test_a_template_minimum_balance_is_checked_in_the_wallets_currency(seeded: Runtime) -> None:
    with seeded.db.session() as session:
        windows = catalog.create_template(session, TemplateCreate(
            code="windows-2022", family="windows", name="Windows Server 2022", is_windows=True, min_balance="20"))
        pricing.require_balance_for_template(session, windows.id, Money(2000, "USD"))
        pricing.require_balance_for_template(session, windows.id, Money(7500, "SAR"))  # 20 x 3.75
        with pytest.raises(PaymentRequired, match=r"75\.00 SAR"):
            pricing.require_balance_for_template(session, windows.id, Money(7499, "SAR"))
        pricing.require_balance_for_template(session, "debian-12-tiny", Money(0, "USD"))


def test_the_rate_used_is_the_latest_stored_one(api: Api, seeded: Runtime) -> None:
    later = clock.now() + timedelta(hours=1)
    with seeded.db.session() as session:
        pricing.set_rate(session, "SAR", RateSet(rate=Decimal("3.80"), source="test feed", fetched_at=later))
    body = api.get("/api/catalog/plans", params={"currency": "SAR"}).json()
    assert body["exchange_rate"] == 3.8
    assert _package(body, "scout-1")["monthly_price"] == "22.80"
