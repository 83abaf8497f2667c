"""An invitation really leaves by SMTP, in the recipient's language, and its link lets them join."""

from __future__ import annotations

import email
import socket
from collections.abc import Iterator
from email.header import decode_header, make_header
from email.message import Message
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from cloudlet.surfaces.deps import Runtime
from tests.conftest import Api
from tests.helpers import make_team, make_user


class Inbox:
    """An aiosmtpd handler that keeps every message it receives."""

    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802  # aiosmtpd's hook name
        self.messages.append(email.message_from_bytes(envelope.content))
        return "250 Message accepted for delivery"


@pytest.fixture
def inbox() -> Iterator[tuple[Inbox, int]]:
    handler = Inbox()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield handler, port
    finally:
        controller.stop()


@pytest.fixture
def settings_overrides(inbox: tuple[Inbox, int]) -> dict[str, Any]:
    return {"smtp_host": "127.0.0.1", "smtp_port": inbox[1]}


def _text(message: Message) -> str:
    payload = message.get_payload(decode=True)
    assert isinstance(payload, bytes)
    return payload.decode(message.get_content_charset() or "utf-8")


def test_an_arabic_invitation_arrives_and_its_link_works(api: Api, runtime: Runtime,
                                                         inbox: tuple[Inbox, int]) -> None:
    jane = make_user(runtime, "jane@example.com", name="Jane")
    carol = make_user(runtime, "carol@example.com")
    team = make_team(runtime, jane, "Acme")

    sent = api.as_(jane.token).post(f"/api/projects/{team}/invitations",
                                    json={"email": "carol@example.com", "locale": "ar"})
    assert sent.status_code == 201, sent.text
    runtime.mailer.wait()

    [message] = inbox[0].messages
    assert message["To"] == "carol@example.com"
    subject = str(make_header(decode_header(message["Subject"])))
    assert "Acme" in subject and "دعاك" in subject
    body = _text(message)
    prefix = "http://cloudlet.test/ar/invitations/"
    token = next(line for line in body.splitlines() if line.startswith(prefix)).removeprefix(prefix)
    joined = api.as_(carol.token).post(f"/api/project-invitations/{token}/accept")
    assert joined.status_code == 200, joined.text
    assert joined.json()["project"]["id"] == team
