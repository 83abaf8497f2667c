"""What integrations show of their secrets, and what their messages say in each service's shape."""

from __future__ import annotations

from cloudlet.integrations import messages
from cloudlet.integrations.service import mask_secret, mask_url


def _notice(*events: dict[str, object], test: bool = False) -> messages.Notice:
    return messages.Notice(delivery_id=7, integration_id=3, project_id=5, name="ops", test=test, events=list(events))


def test_a_masked_url_keeps_where_it_goes_but_not_its_token() -> None:
    assert mask_url("https://hooks.slack.com/services/T0/B0/secret-token") == "https://hooks.slack.com/services/T0/B0/****"
    assert mask_url("https://discord.com/api/webhooks/123/tok?wait=true") == "https://discord.com/api/webhooks/123/****?****"
    assert mask_url("https://user:pw@example.com:8443/") == "https://example.com:8443/"
    assert mask_secret("whsec-0123456789abcdef") == "****cdef"
    assert mask_secret("short-secret") == "****"


def test_slack_text_cannot_ping_a_channel() -> None:
    body = messages.slack(_notice({"id": 1, "kind": "wallet.low_balance", "subject": "<!channel>", "payload": {}}))
    assert "<!channel>" not in body["text"] and "&lt;!channel&gt;" in body["text"]
    assert body["blocks"][0]["text"]["text"] == "Cloudlet: Wallet low balance"


def test_discord_shows_at_most_ten_embeds_and_pings_nobody() -> None:
    many = [{"id": i, "kind": "instance.transfer_warning", "subject": f"instance:{i}", "payload": {"share": 0.9},
             "created_at": "2026-12-07T15:00:00+00:00"} for i in range(1, 13)]
    body = messages.discord(_notice(*many))
    assert body["content"] == "Cloudlet: 12 events" and len(body["embeds"]) == 10
    assert body["embeds"][0] == {"title": "Instance transfer warning", "description": "share=0.9",
                                 "footer": {"text": "instance:1"}, "timestamp": "2026-12-07T15:00:00+00:00"}
    assert body["allowed_mentions"] == {"parse": []}


def test_long_details_are_cut() -> None:
    line = messages.line({"kind": "x.y", "payload": {"text": "a" * 1000}})
    assert len(line) < messages.LINE_CHARS + 20 and line.endswith("…")
    assert messages.headline(_notice(test=True)) == "Cloudlet: test message for the integration 'ops'"
