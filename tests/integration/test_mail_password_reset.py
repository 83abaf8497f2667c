"""Password resets by email: a real SMTP server receives the link, the outbox keeps unsent mail, the CLI lists it."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from cloudlet.cli.main import app as cli
from cloudlet.kit import clock
from cloudlet.mail.models import MailStatus, OutboxMessage
from cloudlet.surfaces.deps import Runtime
from tests.conftest import Api, Inbox
from tests.helpers import PASSWORD, make_user

NEW_PASSWORD = "brand-new-password-7"
SAME_ANSWER = {"message": "If an account exists for this email, a password reset link has been sent to it."}
LINK = re.compile(r"http://cloudlet\.test/reset-password\?token=([A-Za-z0-9_-]+)")


def outbox(runtime: Runtime) -> list[OutboxMessage]:
    with runtime.db.session(write=False) as session:
        return list(session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))


def token_in(body: str) -> str:
    found = LINK.search(body)
    assert found, body
    return found.group(1)


class TestWithSmtp:
    @pytest.fixture
    def settings_overrides(self, inbox: Inbox) -> dict[str, object]:
        return inbox.settings

    def test_the_reset_email_arrives_and_its_link_works_once(self, api: Api, runtime: Runtime,
                                                              inbox: Inbox) -> None:
        make_user(runtime, "jane@example.com")
        old_session = api.post("/v1/auth/login", json={"email": "jane@example.com", "password": PASSWORD}).json()
        reply = api.post("/v1/auth/forgot-password", json={"email": "Jane@Example.com"})
        assert reply.status_code == 202 and reply.json() == SAME_ANSWER
        runtime.mailer.wait()

        assert len(inbox.messages) == 1
        message = inbox.messages[0]
        assert message["To"] == "jane@example.com"
        assert message["Subject"] == "Reset your Cloudlet password"
        payload = message.get_payload(decode=True)
        assert isinstance(payload, bytes)
        token = token_in(payload.decode())
        assert [m.status for m in outbox(runtime)] == [MailStatus.SENT]

        done = api.post("/v1/auth/reset-password", json={"token": token, "new_password": NEW_PASSWORD})
        assert done.status_code == 200, done.text
        assert api.post("/v1/auth/login", json={"email": "jane@example.com", "password": PASSWORD}).status_code == 401
        fresh = api.post("/v1/auth/login", json={"email": "jane@example.com", "password": NEW_PASSWORD})
        assert fresh.status_code == 200
        # Every session from before the reset is over, its access token included (not 15 minutes later).
        assert api.post("/v1/auth/refresh", json={"refresh_token": old_session["refresh_token"]}).status_code == 401
        assert api.as_(old_session["access_token"]).get("/v1/users/me").status_code == 401
        assert api.as_(fresh.json()["access_token"]).get("/v1/users/me").status_code == 200

        again = api.post("/v1/auth/reset-password", json={"token": token, "new_password": "another-one-123"})
        assert again.status_code == 400
        assert again.json() == {"error": "This password reset link has already been used; request a new one."}

    def test_unknown_emails_get_the_same_answer_and_no_mail(self, api: Api, runtime: Runtime,
                                                             inbox: Inbox) -> None:
        reply = api.post("/v1/auth/forgot-password", json={"email": "nobody@example.com"})
        assert reply.status_code == 202 and reply.json() == SAME_ANSWER
        runtime.mailer.wait()
        assert inbox.messages == [] and outbox(runtime) == []


def test_without_smtp_the_message_stays_queued_in_the_outbox(api: Api, runtime: Runtime) -> None:
    make_user(runtime, "jane@example.com")
    assert api.post("/v1/auth/forgot-password", json={"email": "jane@example.com"}).status_code == 202
    messages = outbox(runtime)
    assert len(messages) == 1
    assert messages[0].status is MailStatus.QUEUED and messages[0].kind == "password_reset"
    assert messages[0].to_address == "jane@example.com"
    token = token_in(messages[0].body)
    # Only the digest is stored: the link's token is not in the database as such.
    with runtime.db.engine.connect() as conn:
        stored = conn.exec_driver_sql("SELECT token_hash FROM password_resets").scalar_one()
    assert stored != token and len(stored) == 64


def test_reset_tokens_expire_and_unknown_ones_are_refused(api: Api, runtime: Runtime) -> None:
    make_user(runtime, "jane@example.com")
    api.post("/v1/auth/forgot-password", json={"email": "jane@example.com"})
    token = token_in(outbox(runtime)[0].body)
    with clock.travel(timedelta(minutes=61)):
        late = api.post("/v1/auth/reset-password", json={"token": token, "new_password": NEW_PASSWORD})
    assert late.status_code == 400
    assert late.json() == {"error": "This password reset link has expired; request a new one."}
    unknown = api.post("/v1/auth/reset-password", json={"token": "made-up", "new_password": NEW_PASSWORD})
    assert unknown.status_code == 400 and unknown.json() == {"error": "This password reset link is invalid."}
    weak = api.post("/v1/auth/reset-password", json={"token": token, "new_password": "short"})
    assert weak.status_code == 400 and "at least 8" in weak.json()["error"]
    # The weak attempt did not spend the link.
    assert api.post("/v1/auth/reset-password", json={"token": token, "new_password": NEW_PASSWORD}).status_code == 200


def test_a_newer_reset_retires_older_links(api: Api, runtime: Runtime) -> None:
    make_user(runtime, "jane@example.com")
    api.post("/v1/auth/forgot-password", json={"email": "jane@example.com"})
    api.post("/v1/auth/forgot-password", json={"email": "jane@example.com"})
    first, second = (token_in(m.body) for m in outbox(runtime))
    assert api.post("/v1/auth/reset-password", json={"token": second, "new_password": NEW_PASSWORD}).status_code == 200
    older = api.post("/v1/auth/reset-password", json={"token": first, "new_password": "other-pass-123"})
    assert older.status_code == 400


def test_the_cli_lists_the_outbox(api: Api, runtime: Runtime) -> None:
    make_user(runtime, "jane@example.com")
    assert api.post("/v1/auth/forgot-password", json={"email": "jane@example.com"}).status_code == 202
    settings = runtime.settings
    result = CliRunner().invoke(cli, ["mail", "outbox", "--json"], env={
        "CLOUDLET_DATABASE_URL": settings.effective_database_url,
        "CLOUDLET_DATA_DIR": str(settings.data_dir),
    })
    assert result.exit_code == 0, result.output
    listed = json.loads(result.output)
    assert len(listed) == 1
    assert listed[0]["to_address"] == "jane@example.com"
    assert listed[0]["kind"] == "password_reset" and listed[0]["status"] == "queued"
    assert LINK.search(listed[0]["body"])


def test_reset_requests_are_limited_per_email_alike_for_unknown_accounts(api: Api, runtime: Runtime) -> None:
    make_user(runtime, "jane@example.com")
    for address in ("jane@example.com", "nobody@example.com"):
        for _ in range(10):  # login_rate_per_account = 10/minute
            assert api.post("/v1/auth/forgot-password", json={"email": address}).status_code == 202
        limited = api.post("/v1/auth/forgot-password", json={"email": address})
        assert limited.status_code == 429 and "Retry-After" in limited.headers
        assert limited.json()["error"].startswith("Too many password reset requests for this email.")
    assert len(outbox(runtime)) == 10
