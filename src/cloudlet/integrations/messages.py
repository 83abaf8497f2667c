"""What a delivery says, in each service's own shape: Slack's {"text", "blocks"}, Discord's {"content", "embeds"},
Telegram's plain text, a webhook's JSON, an email's subject and body.

A message tells of one or several events (a burst coalesced): a headline, then one line per event.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

LINE_CHARS = 300  # one event's details, cut
SLACK_HEADER_CHARS = 150  # a header block's plain text
DISCORD_CONTENT_CHARS = 2000
DISCORD_TITLE_CHARS = 256
DISCORD_EMBEDS = 10


@dataclass(frozen=True)
class Notice:
    """What one delivery tells: the integration it goes to and the events, as they were queued."""

    delivery_id: int
    integration_id: int
    project_id: int
    name: str
    test: bool
    events: list[dict[str, Any]]


def title(kind: str) -> str:
    """An event kind as words: "wallet.low_balance" -> "Wallet low balance"."""
    words = kind.replace(".", " ").replace("_", " ").strip()
    return words[:1].upper() + words[1:]


def details(event: dict[str, Any]) -> str:
    """An event's payload as "key=value, ...", cut to LINE_CHARS."""
    payload = event.get("payload") or {}
    parts = [f"{key}={value if isinstance(value, str | int | float | bool) or value is None else json.dumps(value)}"
             for key, value in payload.items()] if isinstance(payload, dict) else [json.dumps(payload)]
    text = ", ".join(parts)
    return text if len(text) <= LINE_CHARS else text[:LINE_CHARS - 1] + "…"


def line(event: dict[str, Any]) -> str:
    """One event in a line: what happened, about what, and its details."""
    subject = f" ({event['subject']})" if event.get("subject") else ""
    said = details(event)
    return f"{title(str(event.get('kind', '')))}{subject}" + (f": {said}" if said else "")


def headline(notice: Notice) -> str:
    """The message's first line."""
    if notice.test:
        return f"Cloudlet: test message for the integration {notice.name!r}"
    if len(notice.events) == 1:
        return f"Cloudlet: {title(str(notice.events[0].get('kind', '')))}"
    return f"Cloudlet: {len(notice.events)} events"


def text(notice: Notice) -> str:
    """The message as plain text (Telegram, email)."""
    return "\n".join([headline(notice), *(f"• {line(event)}" for event in notice.events)])


def _slack_escaped(value: str) -> str:
    # Slack's mrkdwn reads <...> as links and mentions (<!channel>): an event's text must not ping anyone
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack(notice: Notice) -> dict[str, Any]:
    """A Slack incoming-webhook body: "text" (the notification's fallback) and "blocks"."""
    blocks: list[dict[str, Any]] = [{"type": "header", "text": {"type": "plain_text",
                                                                "text": headline(notice)[:SLACK_HEADER_CHARS]}}]
    blocks += [{"type": "section", "text": {"type": "mrkdwn", "text": _slack_escaped(line(event))}}
               for event in notice.events]
    return {"text": _slack_escaped(text(notice)), "blocks": blocks}


def discord(notice: Notice) -> dict[str, Any]:
    """A Discord webhook body: "content" and one embed per event; no mention in it pings anyone."""
    embeds = [{"title": title(str(event.get("kind", "")))[:DISCORD_TITLE_CHARS],
               "description": details(event) or "-",
               **({"footer": {"text": str(event["subject"])[:DISCORD_TITLE_CHARS]}} if event.get("subject") else {}),
               **({"timestamp": event["created_at"]} if event.get("created_at") else {})}
              for event in notice.events[:DISCORD_EMBEDS]]
    return {"content": headline(notice)[:DISCORD_CONTENT_CHARS], "embeds": embeds, "allowed_mentions": {"parse": []}}


def webhook(notice: Notice) -> dict[str, Any]:
    """A generic webhook's JSON body."""
    return {"type": "integration.test" if notice.test else "integration.events", "delivery_id": notice.delivery_id,
            "integration": {"id": notice.integration_id, "name": notice.name,
                            "organization_id": notice.project_id},
            "events": notice.events}


def email(notice: Notice) -> tuple[str, str]:
    """An email's subject and body."""
    footer = (f"\n\nYou receive this because the integration {notice.name!r} of organization {notice.project_id} "
              "sends its events to this address.")
    return headline(notice), text(notice) + footer
