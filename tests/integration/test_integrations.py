"""Integrations at /v1/integrations: CRUD with masked secrets, tenancy and scopes, and events delivered to local
fakes that speak Slack's, Discord's and Telegram's real protocols, to a signed webhook, and to the outbox.

Deliveries are driven the way the worker drives them: `fan_out` reads the events into deliveries, then each
delivery's attempts are made by `delivery.attempt` until it says the delivery is finished (the worker sleeps the
wait it returns between them; here the waits are recorded and checked instead). One test runs the real worker.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from pydantic import BaseModel

from cloudlet.agent import telegram
from cloudlet.app import create_worker
from cloudlet.events import service as events
from cloudlet.events.schemas import EventKind
from cloudlet.integrations import delivery, service
from cloudlet.integrations.models import DeliveryStatus
from cloudlet.integrations.schemas import DeliveryRead
from cloudlet.kit import clock
from cloudlet.mail import service as mail
from cloudlet.surfaces.deps import Runtime
from cloudlet.webhooks import service as webhooks
from tests.cloud import wait_for
from tests.conftest import Api
from tests.fake_chat_hooks import FakeDiscord, FakeSlack
from tests.fake_telegram import FakeTelegram
from tests.helpers import Person, make_user, mint_token
from tests.integration.test_webhooks import Receiver

BACKOFF = 0.05
MAX_ATTEMPTS = 3
SIGNING_SECRET = "whsec-0123456789abcdef"


@pytest.fixture
def bot() -> Iterator[FakeTelegram]:
    """The operator's Telegram bot, on a fake Bot API."""
    with FakeTelegram() as fake:
        yield fake


@pytest.fixture
def settings_overrides(bot: FakeTelegram) -> dict[str, Any]:
    """Loopback targets allowed (the fakes), quick retries, and a bot."""
    return {"webhook_allow_private": True, "webhook_backoff_seconds": BACKOFF, "webhook_max_attempts": MAX_ATTEMPTS,
            "webhook_timeout_seconds": 5, "telegram_bot_token": bot.token, "telegram_api_url": bot.api_url,
            "integration_sweep_schedule": "* * * * * *"}


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    """A Slack incoming webhook."""
    with FakeSlack() as fake:
        yield fake


@pytest.fixture
def discord() -> Iterator[FakeDiscord]:
    """A Discord channel webhook."""
    with FakeDiscord() as fake:
        yield fake


@pytest.fixture
def jane(runtime: Runtime) -> Person:
    """A customer."""
    return make_user(runtime, "jane@example.com")


class LowBalance(BaseModel):
    """A payload like the wallet's."""

    balance_cents: int
    threshold_cents: int


def record(runtime: Runtime, person: Person, kind: str = EventKind.WALLET_LOW_BALANCE, cents: int = 120) -> int:
    """Record an event in the person's project, as its cause would; its id."""
    with runtime.db.session() as session:
        return events.record(session, kind, project_id=person.project_id, subject=f"wallet:{person.project_id}",
                             payload=LowBalance(balance_cents=cents, threshold_cents=500)).id


def fan_out(runtime: Runtime) -> list[int]:
    """What the sweep does first: the events recorded so far, read into deliveries; their ids."""
    with clock.travel(service.SETTLE + timedelta(seconds=1)), runtime.db.session() as session:
        return [delivery_id for delivery_id, _workflow in service.fan_out(session)]


def read(runtime: Runtime, delivery_id: int) -> DeliveryRead:
    """A delivery as the log has it."""
    with runtime.db.session(write=False) as session:
        return service.get_delivery(session, delivery_id)


def drive(runtime: Runtime, delivery_id: int) -> list[float]:
    """Make a delivery's attempts as its workflow does, until it is finished; the waits its attempts asked for.

    A wait that came without an attempt (the destination's rate limit) is waited out, polling, as it is short."""
    waits: list[float] = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        before = read(runtime, delivery_id).attempts
        wait = delivery.attempt(runtime.db, runtime.settings, delivery_id)
        if wait is None:
            return waits
        if read(runtime, delivery_id).attempts == before:
            time.sleep(0.05)  # spaced by the service's limit: no attempt was made
        else:
            waits.append(wait)
    pytest.fail("the delivery did not finish")


def create(api: Api, person: Person, body: dict[str, Any]) -> dict[str, Any]:
    """Create an integration through the API; its body."""
    reply = api.as_(person.token).post("/v1/integrations", json=body)
    assert reply.status_code == 201, reply.text
    found: dict[str, Any] = reply.json()
    return found


# --- the API ---------------------------------------------------------------------------------------------


def test_types_list_what_each_type_needs_and_the_event_kinds(api: Api, jane: Person) -> None:
    reply = api.as_(jane.token).get("/v1/integrations/types")
    assert reply.status_code == 200, reply.text
    body = reply.json()
    by_type = {t["type"]: t for t in body["types"]}
    assert set(by_type) == {"slack", "discord", "telegram", "webhook", "email"}
    assert all(t["available"] for t in body["types"])  # a bot is set up here
    assert by_type["slack"]["config"] == [{"name": "webhook_url", "required": True, "secret": True,
                                          "description": by_type["slack"]["config"][0]["description"]}]
    assert {f["name"]: f["secret"] for f in by_type["webhook"]["config"]} == {"url": True, "secret": True}
    assert by_type["slack"]["rate_limit"] == "1 message per second"
    assert body["events"][0] == "*" and "wallet.low_balance" in body["events"]


def test_create_read_update_delete_with_secrets_masked(api: Api, runtime: Runtime, jane: Person,
                                                      slack: FakeSlack) -> None:
    made = create(api, jane, {"type": "slack", "name": "ops channel", "config": {"webhook_url": slack.url}})
    token = slack.url.rsplit("/", 1)[1]
    assert made["type"] == "slack" and made["name"] == "ops channel" and made["enabled"] is True
    assert made["organization_id"] == str(jane.project_id) and made["events"] == ["*"]
    assert made["config"]["webhook_url"] == slack.url.rsplit("/", 1)[0] + "/****"
    assert token not in str(made) and made["created_at"].endswith("Z")

    hook = create(api, jane, {"type": "webhook", "name": "ci", "events": ["wallet.low_balance"],
                              "config": {"url": f"{slack.url}?key=abc", "secret": SIGNING_SECRET}})
    assert hook["config"] == {"url": slack.url.rsplit("/", 1)[0] + "/****?****", "secret": "****cdef"}
    assert SIGNING_SECRET not in str(hook) and "abc" not in hook["config"]["url"]

    listed = api.as_(jane.token).get("/v1/integrations").json()
    assert listed["total"] == 2 and [i["id"] for i in listed["integrations"]] == [made["id"], hook["id"]]
    assert token not in str(listed)
    mine = api.as_(jane.token).get("/v1/integrations", params={"organization_id": str(jane.project_id)}).json()
    assert mine["total"] == 2
    assert api.as_(jane.token).get(f"/v1/integrations/{made['id']}").json() == made

    # the masked URL sent back keeps the real one; the name, events and enabled flag change
    changed = api.as_(jane.token).put(f"/v1/integrations/{made['id']}", json={
        "name": "alerts", "config": made["config"], "events": ["wallet.low_balance", "wallet.low_balance"],
        "enabled": False})
    assert changed.status_code == 200, changed.text
    assert changed.json()["name"] == "alerts" and changed.json()["events"] == ["wallet.low_balance"]
    assert changed.json()["enabled"] is False and changed.json()["config"] == made["config"]
    with runtime.db.session(write=False) as session:
        row = service.repository.get(session, int(made["id"]))
        assert row is not None
        assert service.opened_config(runtime.settings, row) == {"webhook_url": slack.url}
        assert token not in row.sealed_config  # sealed, not merely stored

    assert api.as_(jane.token).delete(f"/v1/integrations/{made['id']}").status_code == 204
    gone = api.as_(jane.token).get(f"/v1/integrations/{made['id']}")
    assert gone.status_code == 404 and gone.json() == {"error": "Integration not found."}


@pytest.mark.parametrize(("body", "says"), [
    ({"type": "teams", "name": "x", "config": {}}, "type"),
    ({"type": "slack", "name": "x", "config": {}}, "webhook_url"),
    ({"type": "slack", "name": "x", "config": {"webhook_url": "ftp://hooks.example.com/x"}}, "http"),
    ({"type": "slack", "name": "x", "config": {"webhook_url": "not a url at all"}}, "URL"),
    ({"type": "slack", "name": "x", "config": {"webhook_url": "https://hooks.example.com/x", "extra": 1}}, "extra"),
    ({"type": "discord", "name": "  ", "config": {"webhook_url": "https://discord.example.com/a/b"}}, "blank"),
    ({"type": "email", "name": "x", "config": {"address": "not-an-address"}}, "address"),
    ({"type": "webhook", "name": "x", "config": {"url": "https://example.com/h", "secret": "short"}}, "secret"),
    ({"type": "email", "name": "x", "config": {"address": "a@example.com"}, "events": ["nope.nothing"]}, "nope"),
    ({"type": "email", "name": "x", "config": {"address": "a@example.com"}, "events": []}, "event kind"),
    ({"type": "telegram", "name": "x", "config": {"chat_id": "4242"}}, "link id"),
])
def test_bad_input_is_a_400_that_says_what_is_wrong(api: Api, jane: Person, body: dict[str, Any],
                                                      says: str) -> None:
    reply = api.as_(jane.token).post("/v1/integrations", json=body)
    assert reply.status_code == 400, reply.text
    assert says.lower() in reply.json()["error"].lower()
    assert api.as_(jane.token).get("/v1/integrations").json()["total"] == 0


def test_private_targets_are_refused_unless_the_operator_allows_them(
        api: Api, runtime: Runtime, jane: Person, slack: FakeSlack, monkeypatch: pytest.MonkeyPatch) -> None:
    allowed = create(api, jane, {"type": "discord", "name": "d", "config": {"webhook_url": slack.url}})
    monkeypatch.setattr(runtime.settings, "webhook_allow_private", False)
    for url in (slack.url, "http://10.1.2.3/hook", "http://169.254.169.254/latest", "http://localhost:8080/x",
                "http://[::1]/x", "http://2130706433/x"):
        for body in ({"type": "slack", "name": "s", "config": {"webhook_url": url}},
                     {"type": "webhook", "name": "w", "config": {"url": url}}):
            refused = api.as_(jane.token).post("/v1/integrations", json=body)
            assert refused.status_code == 400 and "may not point" in refused.json()["error"], (url, refused.text)
    # and at delivery: one made while the operator allowed it is refused once they no longer do
    sent = api.as_(jane.token).post(f"/v1/integrations/{allowed['id']}/test")
    assert sent.status_code == 202
    assert drive(runtime, int(sent.json()["id"])) == []
    failed = read(runtime, int(sent.json()["id"]))
    assert failed.status is DeliveryStatus.FAILED and failed.attempts == 1
    assert failed.last_error is not None and failed.last_error.startswith("refused")
    assert slack.posted == []


def test_another_organizations_integration_is_not_found(api: Api, runtime: Runtime, jane: Person,
                                                        slack: FakeSlack) -> None:
    john = make_user(runtime, "john@example.com")
    made = create(api, jane, {"type": "slack", "name": "s", "config": {"webhook_url": slack.url}})
    path = f"/v1/integrations/{made['id']}"
    as_john = api.as_(john.token)
    for reply in (as_john.get(path), as_john.put(path, json={"name": "mine"}), as_john.delete(path),
                  as_john.post(f"{path}/test"), as_john.get(f"{path}/deliveries")):
        assert reply.status_code == 404 and reply.json() == {"error": "Integration not found."}
    assert as_john.get("/v1/integrations").json() == {"integrations": [], "total": 0}
    assert as_john.get("/v1/integrations", params={"organization_id": str(jane.project_id)}).status_code == 404
    stranger = as_john.post("/v1/integrations", json={"type": "slack", "name": "s", "organization_id":
                                                      jane.project_id, "config": {"webhook_url": slack.url}})
    assert stranger.status_code == 404
    for ident in ("abc", "0", "99999999999999999999"):
        assert api.as_(jane.token).get(f"/v1/integrations/{ident}").status_code == 404
    assert api.as_(jane.token).get(path).json()["name"] == "s"  # untouched


def test_scopes_read_and_write(api: Api, runtime: Runtime, jane: Person, slack: FakeSlack) -> None:
    made = create(api, jane, {"type": "slack", "name": "s", "config": {"webhook_url": slack.url}})
    reader = api.as_(mint_token(runtime, jane, "integrations:read"))
    assert reader.get("/v1/integrations").status_code == 200
    assert reader.get(f"/v1/integrations/{made['id']}/deliveries").status_code == 200
    for refused in (reader.post("/v1/integrations", json={}), reader.post(f"/v1/integrations/{made['id']}/test"),
                    reader.delete(f"/v1/integrations/{made['id']}")):
        assert refused.status_code == 403 and "integrations:write" in refused.json()["error"]
    other = api.as_(mint_token(runtime, jane, "instances:read"))
    assert other.get("/v1/integrations").status_code == 403
    assert other.get("/v1/integrations/types").status_code == 403
    writer = api.as_(mint_token(runtime, jane, "integrations:*"))
    assert writer.put(f"/v1/integrations/{made['id']}", json={"name": "t"}).status_code == 200


# --- deliveries ------------------------------------------------------------------------------------------


def test_events_reach_slack_and_discord_in_their_own_shapes_one_message_per_burst(
        api: Api, runtime: Runtime, jane: Person, slack: FakeSlack, discord: FakeDiscord) -> None:
    before = record(runtime, jane)  # recorded before the integrations: never told
    to_slack = create(api, jane, {"type": "slack", "name": "s", "config": {"webhook_url": slack.url}})
    to_discord = create(api, jane, {"type": "discord", "name": "d", "config": {"webhook_url": discord.url}})
    transfers_only = create(api, jane, {"type": "slack", "name": "t", "events": ["instance.transfer_warning"],
                                        "config": {"webhook_url": slack.url + "x"}})
    create(api, jane, {"type": "discord", "name": "off", "enabled": False, "config": {"webhook_url": discord.url}})
    john = make_user(runtime, "john@example.com")
    burst = [record(runtime, jane, cents=cents) for cents in (300, 200, 100)]
    record(runtime, john)  # another organization's

    queued = fan_out(runtime)
    assert len(queued) == 2  # one message per integration that receives the kind, the burst coalesced
    assert fan_out(runtime) == []  # the cursor moved: a second reading takes nothing
    for delivery_id in queued:
        assert drive(runtime, delivery_id) == []
        assert read(runtime, delivery_id).status is DeliveryStatus.DELIVERED

    assert len(slack.messages) == 1 and len(discord.messages) == 1
    posted = slack.messages[0]
    assert set(posted) == {"text", "blocks"}
    assert posted["text"].startswith("Cloudlet: 3 events") and "balance_cents=200" in posted["text"]
    assert posted["blocks"][0]["type"] == "header"
    assert posted["blocks"][1]["text"]["text"].startswith("Wallet low balance (wallet:")
    assert slack.posted[0].headers["content-type"] == "application/json"
    shown = discord.messages[0]
    assert shown["content"] == "Cloudlet: 3 events" and len(shown["embeds"]) == 3
    assert shown["embeds"][0]["title"] == "Wallet low balance"
    assert shown["embeds"][0]["description"] == "balance_cents=300, threshold_cents=500"
    assert shown["allowed_mentions"] == {"parse": []}

    log = api.as_(jane.token).get(f"/v1/integrations/{to_slack['id']}/deliveries").json()
    assert log["total"] == 1
    entry = log["deliveries"][0]
    assert entry["status"] == "delivered" and entry["attempts"] == 1 and entry["last_status_code"] == 200
    assert entry["event_ids"] == [str(i) for i in burst] and str(before) not in entry["event_ids"]
    assert entry["kinds"] == ["wallet.low_balance"] * 3 and entry["test"] is False
    assert api.as_(jane.token).get(f"/v1/integrations/{to_discord['id']}/deliveries").json()[
        "deliveries"][0]["last_status_code"] == 204
    assert api.as_(jane.token).get(f"/v1/integrations/{transfers_only['id']}/deliveries").json()["total"] == 0

    record(runtime, jane, kind=EventKind.TRANSFER_WARNING)
    told = {read(runtime, delivery_id).integration_id for delivery_id in fan_out(runtime)}
    assert told == {int(to_slack["id"]), int(to_discord["id"]), int(transfers_only["id"])}


def test_a_429_is_retried_after_retry_after_and_delivered_once(
        api: Api, runtime: Runtime, jane: Person, slack: FakeSlack, discord: FakeDiscord) -> None:
    create(api, jane, {"type": "slack", "name": "s", "config": {"webhook_url": slack.url}})
    create(api, jane, {"type": "discord", "name": "d", "config": {"webhook_url": discord.url}})
    slack.throttle(retry_after=3)
    discord.throttle(retry_after=2.5)
    record(runtime, jane)
    to_slack, to_discord = fan_out(runtime)

    assert drive(runtime, to_slack) == [3.0]  # the backoff (0.05 s) gave way to Slack's Retry-After
    assert drive(runtime, to_discord) == [3.0]  # Discord: the header's whole seconds, over its JSON's 2.5
    for delivery_id, fake in ((to_slack, slack), (to_discord, discord)):
        done = read(runtime, delivery_id)
        assert done.status is DeliveryStatus.DELIVERED and done.attempts == 2
        assert len(fake.posted) == 2 and len(fake.messages) == 1  # refused once, taken once


def test_a_target_that_keeps_failing_is_retried_then_recorded_as_failed(
        api: Api, runtime: Runtime, jane: Person, slack: FakeSlack, discord: FakeDiscord) -> None:
    failing = create(api, jane, {"type": "discord", "name": "d", "config": {"webhook_url": discord.url}})
    create(api, jane, {"type": "slack", "name": "s", "config": {"webhook_url": slack.url}})
    discord.fail(503, times=MAX_ATTEMPTS + 5)
    slack.removed = True  # Slack's 404 "no_service": retrying cannot help
    record(runtime, jane)
    to_discord, to_slack = fan_out(runtime)

    assert drive(runtime, to_discord) == [BACKOFF * 2 ** n for n in range(MAX_ATTEMPTS - 1)]  # doubling
    given_up = read(runtime, to_discord)
    assert given_up.status is DeliveryStatus.FAILED and given_up.attempts == MAX_ATTEMPTS
    assert given_up.last_status_code == 503 and len(discord.posted) == MAX_ATTEMPTS
    assert drive(runtime, to_slack) == []
    gone = read(runtime, to_slack)
    assert gone.status is DeliveryStatus.FAILED and gone.attempts == 1
    assert gone.last_status_code == 404 and gone.last_error == "HTTP 404: no_service"
    # nothing lost: the log keeps the message and the events it was to tell of
    log = api.as_(jane.token).get(f"/v1/integrations/{failing['id']}/deliveries").json()["deliveries"]
    assert [(d["status"], d["attempts"], d["kinds"]) for d in log] == [
        ("failed", MAX_ATTEMPTS, ["wallet.low_balance"])]


def test_a_destination_is_spaced_to_its_service_limit(api: Api, runtime: Runtime, jane: Person,
                                                      slack: FakeSlack) -> None:
    made = create(api, jane, {"type": "slack", "name": "s", "config": {"webhook_url": slack.url}})
    first = int(api.as_(jane.token).post(f"/v1/integrations/{made['id']}/test").json()["id"])
    second = int(api.as_(jane.token).post(f"/v1/integrations/{made['id']}/test").json()["id"])
    assert delivery.attempt(runtime.db, runtime.settings, first) is None
    wait = delivery.attempt(runtime.db, runtime.settings, second)  # within the same second: not sent yet
    assert wait is not None and 0 < wait <= 1
    assert read(runtime, second).attempts == 0 and len(slack.posted) == 1
    drive(runtime, second)
    assert read(runtime, second).status is DeliveryStatus.DELIVERED and len(slack.messages) == 2


def test_the_test_endpoint_queues_a_message_through_the_same_path(api: Api, runtime: Runtime, jane: Person,
                                                                  discord: FakeDiscord) -> None:
    made = create(api, jane, {"type": "discord", "name": "deploys", "config": {"webhook_url": discord.url}})
    reply = api.as_(jane.token).post(f"/v1/integrations/{made['id']}/test")
    assert reply.status_code == 202, reply.text
    queued = reply.json()
    assert queued["status"] == "pending" and queued["test"] is True and queued["kinds"] == ["integration.test"]
    assert queued["integration_id"] == made["id"] and queued["event_ids"] == [] and queued["attempts"] == 0
    drive(runtime, int(queued["id"]))
    assert discord.messages[0]["content"] == "Cloudlet: test message for the integration 'deploys'"
    log = api.as_(jane.token).get(f"/v1/integrations/{made['id']}/deliveries").json()
    assert log["deliveries"][0]["status"] == "delivered"


def test_email_integrations_write_to_the_outbox(api: Api, runtime: Runtime, jane: Person) -> None:
    made = create(api, jane, {"type": "email", "name": "on call", "config": {"address": "oncall@example.com"}})
    assert made["config"] == {"address": "oncall@example.com"}
    record(runtime, jane)
    (queued,) = fan_out(runtime)
    drive(runtime, queued)
    assert read(runtime, queued).status is DeliveryStatus.DELIVERED
    with runtime.db.session(write=False) as session:
        (message,) = [m for m in mail.outbox(session) if m.kind == "integration"]
    assert message.to_address == "oncall@example.com" and message.subject == "Cloudlet: Wallet low balance"
    assert "balance_cents=120" in message.body and "'on call'" in message.body


def test_a_generic_webhook_gets_signed_json(api: Api, runtime: Runtime, jane: Person) -> None:
    receiver = Receiver()
    receiver.start()
    try:
        made = create(api, jane, {"type": "webhook", "name": "ci",
                                  "config": {"url": receiver.url, "secret": SIGNING_SECRET}})
        event_id = record(runtime, jane)
        (queued,) = fan_out(runtime)
        drive(runtime, queued)
    finally:
        receiver.stop()
    (got,) = receiver.requests
    assert webhooks.signature_matches(SIGNING_SECRET, got.body, got.headers["x-webhook-signature"])
    assert got.headers["x-webhook-event"] == "integration.events"
    body = json.loads(got.body)
    assert body["type"] == "integration.events" and body["integration"]["id"] == int(made["id"])
    assert [(e["id"], e["kind"]) for e in body["events"]] == [(event_id, "wallet.low_balance")]
    assert body["events"][0]["payload"] == {"balance_cents": 120, "threshold_cents": 500}


def test_telegram_chats_are_named_by_the_bots_link_id(api: Api, runtime: Runtime, jane: Person,
                                                       bot: FakeTelegram) -> None:
    bot.send(4242, "/start")  # the bot knows the chat (the link id is what its /start answer gives)
    link = telegram.link_id(runtime.settings, "4242")
    forged = api.as_(jane.token).post("/v1/integrations", json={
        "type": "telegram", "name": "t", "config": {"chat_id": "4243-" + link.rsplit("-", 1)[1]}})
    assert forged.status_code == 400
    made = create(api, jane, {"type": "telegram", "name": "t", "config": {"chat_id": link}})
    assert made["config"] == {"chat_id": "4242"}
    queued = api.as_(jane.token).post(f"/v1/integrations/{made['id']}/test").json()
    drive(runtime, int(queued["id"]))
    assert read(runtime, int(queued["id"])).status is DeliveryStatus.DELIVERED
    assert bot.sent[-1].chat_id == 4242 and bot.sent[-1].text.startswith("Cloudlet: test message")


def test_the_worker_sweeps_events_out_on_its_own(api: Api, runtime: Runtime, jane: Person,
                                                 slack: FakeSlack) -> None:
    made = create(api, jane, {"type": "slack", "name": "s", "config": {"webhook_url": slack.url}})
    worker = create_worker(runtime=runtime)
    worker.start()
    try:
        record(runtime, jane)
        wait_for(lambda: slack.messages, timeout=30)
        # a test message starts at once, after the commit that queued it
        queued = api.as_(jane.token).post(f"/v1/integrations/{made['id']}/test").json()
        wait_for(lambda: read(runtime, int(queued["id"])).status is DeliveryStatus.DELIVERED, timeout=30)
    finally:
        worker.stop(grace_seconds=0)
    assert [m["text"].split("\n")[0] for m in slack.messages] == [
        "Cloudlet: Wallet low balance", "Cloudlet: test message for the integration 's'"]
