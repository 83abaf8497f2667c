"""The wallet on every surface: balance, ledger, settings, top-ups, agent credits, account and admin credits."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from cloudlet.auth import service as auth
from cloudlet.billing import service as billing
from cloudlet.billing.models import EntryKind, Pool
from cloudlet.cli.main import app as cli
from cloudlet.surfaces.deps import Runtime
from tests.conftest import Api
from tests.helpers import Person, make_user, mint_token


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"agent_trial_credit_cents": 500}


def fund(runtime: Runtime, person: Person, cents: int, key: str = "fund") -> None:
    with runtime.db.session() as s:
        wallet_id = billing.wallet_of(s, runtime.settings, person.project_id).id
        billing.credit(s, wallet_id, cents, kind=EntryKind.ADMIN_CREDIT, key=key, description="Welcome")


def test_balance_has_the_documented_shape_with_exact_dollars(api: Api, runtime: Runtime) -> None:
    person = make_user(runtime, "bal@example.com")
    fund(runtime, person, 5240)
    reply = api.as_(mint_token(runtime, person, "wallet:read")).get("/api/wallet/balance")
    assert reply.status_code == 200
    assert reply.json() == {"balance_cents": 5240, "balance_usd": 52.40}
    assert '"balance_usd": 52.40' in reply.text  # written from the Decimal, not from a float
    assert api.as_(mint_token(runtime, person, "instances:read")).get("/api/wallet/balance").status_code == 403


def test_transactions_filter_by_type_and_page(api: Api, runtime: Runtime) -> None:
    person = make_user(runtime, "tx@example.com")
    fund(runtime, person, 1000)
    with runtime.db.session() as s:
        wallet_id = billing.wallet_of(s, runtime.settings, person.project_id).id
        for i in range(3):
            billing.debit(s, wallet_id, 100, kind=EntryKind.HOURLY, key=f"h{i}", description="Hourly charge")
    client = api.as_(mint_token(runtime, person, "wallet:read"))
    everything = client.get("/api/wallet/transactions").json()
    assert everything["total"] == 4 and everything["limit"] == 50
    assert [t["amount_cents"] for t in everything["data"]] == [-100, -100, -100, 1000]  # newest first
    assert everything["data"][0]["balance_after_cents"] == 700
    debits = client.get("/api/wallet/transactions", params={"type": "debit", "limit": 2}).json()
    assert debits["total"] == 3 and len(debits["data"]) == 2 and debits["has_more"] is True
    rest = client.get("/api/wallet/transactions", params={"type": "debit", "limit": 2, "offset": 2}).json()
    assert len(rest["data"]) == 1 and rest["has_more"] is False
    credits = client.get("/api/wallet/transactions", params={"type": "credit"}).json()
    assert [t["kind"] for t in credits["data"]] == ["admin_credit"]
    assert client.get("/api/wallet/transactions", params={"limit": 201}).status_code == 422
    assert client.get("/api/wallet/transactions", params={"type": "both"}).status_code == 422


def test_another_projects_wallet_answers_404(api: Api, runtime: Runtime) -> None:
    owner = make_user(runtime, "owner@example.com")
    stranger = make_user(runtime, "stranger@example.com")
    fund(runtime, owner, 100)
    client = api.as_(stranger.token)
    assert client.get("/api/wallet/balance", params={"project_id": owner.project_id}).status_code == 404
    assert client.get("/api/wallet/transactions", params={"project_id": owner.project_id}).status_code == 404
    assert api.as_(owner.token).get("/api/wallet/balance",
                                    params={"project_id": owner.project_id}).json()["balance_cents"] == 100


def test_top_up_needs_a_payment_provider_unless_an_operator_pays(api: Api, runtime: Runtime) -> None:
    person = make_user(runtime, "topup@example.com")
    refused = api.as_(mint_token(runtime, person, "wallet:write")).post("/api/wallet/top-up",
                                                                        json={"amount_cents": 1000})
    assert refused.status_code == 403 and refused.json()["code"] == "TOPUP_UNAVAILABLE"
    admin = make_user(runtime, "root@example.com", admin=True)
    done = api.as_(admin.token).post("/api/wallet/top-up", json={"amount_cents": 1000})
    assert done.status_code == 201, done.text
    assert done.json()["balance_cents"] == 1000 and done.json()["transaction"]["kind"] == "topup"
    assert api.as_(admin.token).post("/api/wallet/top-up", json={"amount_cents": 0}).status_code == 422
    assert api.as_(mint_token(runtime, admin, "wallet:read")).post("/api/wallet/top-up",
                                                                   json={"amount_cents": 5}).status_code == 403


def test_wallet_settings_drive_the_low_balance_threshold_and_cyberpanel_auto_funding(api: Api,
                                                                                       runtime: Runtime) -> None:
    person = make_user(runtime, "settings@example.com")
    fund(runtime, person, 15000)
    client = api.as_(person.token)
    changed = client.patch("/api/wallet", json={"low_balance_threshold_cents": 2000, "auto_funding_enabled": True,
                                                "auto_funding_threshold_cents": 1000,
                                                "auto_funding_amount_cents": 5000})
    assert changed.status_code == 200, changed.text
    assert changed.json()["low_balance_threshold_cents"] == 2000
    assert client.patch("/api/wallet", json={"colour": "red"}).status_code == 422
    with runtime.db.session() as s:
        billing.debit(s, billing.wallet_of(s, runtime.settings, person.project_id).id, 82,
                      kind=EntryKind.HOURLY, key="h", description="VPS Hourly Charge - my-server.example.com")
    info = api.as_(mint_token(runtime, person, "billing:read")).get("/api/v1/billing")
    assert info.status_code == 200, info.text
    data = info.json()["data"]
    assert info.json()["success"] is True
    assert data["balance"] == "149.18"
    assert data["auto_funding"] == {"enabled": True, "threshold": "10.00", "amount": "50.00"}
    assert data["recent_invoices"][0]["amount"] == "-0.82" and data["recent_invoices"][0]["type"] == "debit"
    assert set(data["recent_invoices"][0]) == {"id", "description", "amount", "type", "date"}
    assert api.as_(mint_token(runtime, person, "account:read")).get("/api/v1/billing").status_code == 403


def test_cyberpanel_account_has_exactly_the_reference_fields(api: Api, runtime: Runtime) -> None:
    person = make_user(runtime, "cp@example.com", name="John Doe")
    fund(runtime, person, 15000)
    reply = api.as_(mint_token(runtime, person, "account:read")).get("/api/v1/account")
    assert reply.status_code == 200, reply.text
    data = reply.json()["data"]
    assert set(data) == {"id", "email", "full_name", "balance", "status", "two_factor_enabled",
                         "vps_ordering_enabled", "registration_date"}
    assert data["balance"] == "150.00" and data["full_name"] == "John Doe" and data["status"] == "active"
    assert data["two_factor_enabled"] is False and data["registration_date"].endswith("Z")
    with runtime.db.session() as s:
        user = auth.get_user(s, person.id)
        user.mfa_enabled = True
    assert api.as_(person.token).get("/api/v1/account").json()["data"]["two_factor_enabled"] is True
    assert api.as_(mint_token(runtime, person, "billing:read")).get("/api/v1/account").status_code == 403


def test_agent_credits_are_a_separate_pool_with_trial_credit(api: Api, runtime: Runtime) -> None:
    person = make_user(runtime, "agent@example.com")
    fund(runtime, person, 9999)
    client = api.as_(mint_token(runtime, person, "agent:read"))
    assert client.get("/api/agent/credits").json() == {"balance_cents": 500, "trial_remaining_cents": 500}
    with runtime.db.session() as s:
        pool = billing.wallet_of(s, runtime.settings, person.project_id, Pool.AGENT)
        billing.credit(s, pool.id, 740, kind=EntryKind.TOPUP, key="buy")
        billing.debit(s, pool.id, 200, kind=EntryKind.AGENT_USAGE, key="chat-1")
    assert client.get("/api/agent/credits").json() == {"balance_cents": 1040, "trial_remaining_cents": 300}
    assert api.as_(mint_token(runtime, person, "wallet:read")).get("/api/agent/credits").status_code == 403


def test_shardlyn_usage_and_limits_and_admin_credits(api: Api, runtime: Runtime) -> None:
    person = make_user(runtime, "org@example.com")
    admin = make_user(runtime, "ops@example.com", admin=True)
    refused = api.as_(person.token).post(f"/v1/admin/wallets/{person.project_id}/credits",
                                         json={"amount_cents": 100, "reason": "x"})
    assert refused.status_code == 403
    credited = api.as_(admin.token).post(f"/v1/admin/wallets/{person.project_id}/credits",
                                         json={"amount_cents": 2500, "reason": "Goodwill"})
    assert credited.status_code == 201, credited.text
    assert credited.json()["balance_after_cents"] == 2500 and credited.json()["description"] == "Goodwill"
    assert api.as_(admin.token).post("/v1/admin/wallets/999999/credits", json={"amount_cents": 1}).status_code == 404
    assert api.as_(admin.token).post(f"/v1/admin/wallets/{person.project_id}/credits",
                                     json={"amount_cents": -5}).status_code == 400
    usage = api.as_(person.token).get("/v1/billing/org/usage")
    assert usage.status_code == 200
    assert usage.json()["credited_cents"] == 2500 and usage.json()["organization_id"] == person.project_id
    limits = api.as_(person.token).get("/v1/billing/org/limits").json()
    assert limits["balance_cents"] == 2500 and limits["overdraft_limit_cents"] == 0
    assert api.as_(admin.token).get(f"/v1/admin/wallets/{person.project_id}").json()["balance_cents"] == 2500


def test_cli_credits_a_users_personal_wallet(runtime: Runtime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    person = make_user(runtime, "cli-credit@example.com")
    monkeypatch.setenv("CLOUDLET_DATABASE_URL", runtime.settings.effective_database_url)
    monkeypatch.setenv("CLOUDLET_DATA_DIR", str(tmp_path / "data"))
    result = CliRunner().invoke(cli, ["wallet", "credit", "CLI-Credit@example.com", "1234", "--reason", "Refund"])
    assert result.exit_code == 0, result.output
    assert "balance is now 1234" in result.output
    with runtime.db.session(write=False) as s:
        assert billing.balance_cents(s, runtime.settings, person.project_id) == 1234
    missing = CliRunner().invoke(cli, ["wallet", "credit", "nobody@example.com", "5"])
    assert missing.exit_code == 1 and "not found" in missing.output
    negative = CliRunner().invoke(cli, ["wallet", "credit", "cli-credit@example.com", "--", "-5"])
    assert negative.exit_code != 0
