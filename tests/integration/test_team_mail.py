"""An invitation really leaves by SMTP, in the recipient's language, and its link lets them join."""

from __future__ import annotations

from email.header import decode_header, make_header
from email.message import Message
from typing import Any

import pytest

from cloudlet.surfaces.deps import Runtime
from tests.conftest import Api, Inbox
from tests.helpers import make_team, make_user


@pytest.fixture
def settings_overrides(inbox: Inbox) -> dict[str, Any]:
    return inbox.settings


def _text(message: Message) -> str:
    payload = message.get_payload(decode=True)
    assert isinstance(payload, bytes)
    return payload.decode(message.get_content_charset() or "utf-8")


def test_an_arabic_invitation_arrives_and_its_link_works(api: Api, runtime: Runtime,
                                                         inbox: Inbox) -> None:
    jane = make_user(runtime, "jane@example.com", name="Jane")
    carol = make_user(runtime, "carol@example.com")
    team = make_team(runtime, jane, "Acme")

    sent = api.as_(jane.token).post(f"/api/projects/{team}/invitations",
                                    json={"email": "carol@example.com", "locale": "ar"})
    assert sent.status_code == 201, sent.text
    runtime.mailer.wait()

    [message] = inbox.messages
    assert message["To"] == "carol@example.com"
    subject = str(make_header(decode_header(message["Subject"])))
    assert "Acme" in subject and "دعاك" in subject
    body = _text(message)
    prefix = "http://cloudlet.test/ar/invitations/"
    token = next(line for line in body.splitlines() if line.startswith(prefix)).removeprefix(prefix)
    joined = api.as_(carol.token).post(f"/api/project-invitations/{token}/accept")
    assert joined.status_code == 200, joined.text
    assert joined.json()["project"]["id"] == team
