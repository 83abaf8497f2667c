"""The agent from Telegram, on both engines: a fake Bot API server (tests/fake_telegram.py) and a fake model server
(tests/fake_llm.py) that both speak their real protocols. The poll round is called directly, as the worker's
schedule would call it. /start gives the chat its id; linking through the API (tenancy, scopes, bad ids, moving a
chat); a linked chat's message runs the agent as the linking user and its answer comes back through sendMessage,
paid from the credit pool as a chat request is; refusals are short answers; a chat that is not linked gets help
and nothing reaches the model; each update is taken once; Telegram's 429 pauses the rounds; no bot, no round."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from pydantic import SecretStr

from cloudlet.agent import repository as agent_repository
from cloudlet.agent import service as agent_service
from cloudlet.agent import telegram
from cloudlet.auth.models import User, UserStatus
from cloudlet.billing import service as billing
from cloudlet.instances import repository as instance_repository
from cloudlet.instances.models import InstanceStatus
from cloudlet.kit import clock
from tests.cloud import Cloud
from tests.fake_llm import Call, FakeModel, Say
from tests.fake_telegram import FakeTelegram
from tests.helpers import make_user, mint_token
from tests.integration.test_agent import TRIAL, agent_debits, guest_of, server

CHAT = 4242  # the customer's private chat with the bot
NEVER = "0 0 0 1 1 *"  # the worker's own round stays out of the way: the tests call the round themselves


@pytest.fixture
def llm() -> Iterator[FakeModel]:
    with FakeModel() as fake:
        yield fake


@pytest.fixture
def bot() -> Iterator[FakeTelegram]:
    with FakeTelegram() as fake:
        yield fake


@pytest.fixture
def settings_overrides(llm: FakeModel, bot: FakeTelegram) -> dict[str, Any]:
    # prices as in test_agent: 10 input tokens cost 1 cent, 5 output tokens 1 cent, a tool call half a cent
    return {"agent_base_url": llm.base_url, "agent_api_key": llm.key, "agent_model": "fake-model",
            "webhook_allow_private": True, "agent_trial_credit_cents": TRIAL, "agent_retries": 0,
            "agent_price_input_per_1k_cents": "100", "agent_price_output_per_1k_cents": "200",
            "agent_price_tool_call_cents": "0.5", "telegram_bot_token": bot.token, "telegram_api_url": bot.api_url,
            "telegram_poll_schedule": NEVER}


def poll(cloud: Cloud) -> int:
    """One round, as the worker's schedule runs it."""
    return telegram.poll(cloud.runtime.db, cloud.runtime.settings, cloud.runtime.drivers)


def link_id(cloud: Cloud, chat: int = CHAT) -> str:
    """What the bot's /start reply gives the chat to link it with."""
    return telegram.link_id(cloud.runtime.settings, str(chat))


def link(cloud: Cloud, server_id: str, chat: int = CHAT) -> None:
    answer = cloud.client().post(f"/api/instances/{server_id}/agent/telegram",
                                 json={"telegram_chat_id": link_id(cloud, chat)})
    assert answer.status_code == 200 and answer.json() == {"telegram_chat_id": link_id(cloud, chat)}, answer.text


def cursor(cloud: Cloud, bot: FakeTelegram) -> int:
    with cloud.runtime.db.session(write=False) as session:
        return agent_repository.next_update_id(session, bot.token.split(":")[0])


def test_start_gives_the_chat_its_id_and_each_update_is_taken_once(cloud: Cloud, bot: FakeTelegram,
                                                                   llm: FakeModel) -> None:
    first = bot.send(CHAT, "/start")
    assert poll(cloud) == 1
    [reply] = bot.texts(CHAT)
    assert f"This chat's link id is {link_id(cloud)}." in reply
    assert f'POST /api/instances/{{id}}/agent/telegram with {{"telegram_chat_id": "{link_id(cloud)}"}}' in reply
    assert bot.calls == ["getupdates", "sendmessage"]
    assert cursor(cloud, bot) == first + 1  # kept in the database: a restarted worker reads on from here
    # the next round asks from there, which confirms the update to Telegram; nothing is answered twice
    assert poll(cloud) == 0 and bot.pending() == [] and len(bot.sent) == 1
    # a chat that is not linked gets help, and nothing reaches the model
    bot.send(CHAT, "Is my server up?")
    bot.send(-100123, "/start@cloudlet_test_bot", chat_type="group")
    assert poll(cloud) == 2
    assert bot.texts(CHAT)[-1] == telegram.NOT_LINKED
    assert f"This chat's link id is {link_id(cloud, -100123)}." in bot.texts(-100123)[0]
    assert llm.requests == []


def test_a_chat_is_linked_through_the_api(cloud: Cloud) -> None:
    client = cloud.client()
    server_id = server(cloud)
    url = f"/api/instances/{server_id}/agent/telegram"
    assert client.get(url).json() == {"telegram_chat_id": None}
    link(cloud, server_id)
    assert client.get(url).json() == {"telegram_chat_id": link_id(cloud)}
    link(cloud, server_id)  # again: the same link

    forged = link_id(cloud, 555)[:-1] + ("a" if not link_id(cloud, 555).endswith("a") else "b")
    another_chats = f"555-{link_id(cloud).rsplit('-', 1)[1]}"  # a tag is good for its own chat only
    for bad in ["abc", "", "12a", "0", "--5", " 42", "1" * 17, "4.2", 4242, None, str(CHAT), forged,
                another_chats]:
        answer = client.post(url, json={"telegram_chat_id": bad})
        assert answer.status_code == 422 and "telegram_chat_id" in answer.json()["errors"], (bad, answer.text)
    assert client.post(url, json={}).status_code == 422
    assert client.get(url).json() == {"telegram_chat_id": link_id(cloud)}  # nothing changed

    reader = cloud.api.as_(mint_token(cloud.runtime, cloud.customer, "agent:read"))
    assert reader.get(url).json() == {"telegram_chat_id": link_id(cloud)}
    assert reader.post(url, json={"telegram_chat_id": link_id(cloud, 77)}).status_code == 403
    assert reader.delete(url).status_code == 403
    stranger = cloud.api.as_(make_user(cloud.runtime, "stranger@example.com").token)
    assert stranger.get(url).status_code == 404
    assert stranger.post(url, json={"telegram_chat_id": link_id(cloud, 77)}).status_code == 404
    assert stranger.delete(url).status_code == 404
    assert client.get("/api/instances/no-such-server/agent/telegram").status_code == 404

    # a chat talks to one server: linking it to another moves it; a group's id is negative
    other = server(cloud)
    link(cloud, other)
    assert client.get(url).json() == {"telegram_chat_id": None}
    assert client.get(f"/api/instances/{other}/agent/telegram").json() == {"telegram_chat_id": link_id(cloud)}
    link(cloud, server_id, -1001234567890)
    assert client.get(url).json() == {"telegram_chat_id": link_id(cloud, -1001234567890)}

    assert client.delete(url).status_code == 204
    assert client.get(url).json() == {"telegram_chat_id": None}
    assert client.delete(url).status_code == 204  # nothing left to unlink


def test_a_linked_chat_talks_to_the_servers_agent_at_the_price_of_a_chat(cloud: Cloud, bot: FakeTelegram,
                                                                        llm: FakeModel) -> None:
    client = cloud.client()
    server_id = server(cloud)
    guest, hostname = guest_of(cloud, server_id)
    link(cloud, server_id)
    llm.script = [Call("shell", {"command": "hostname"}), Say(f"The server is called {hostname.split('.')[0]}.")]
    bot.send(CHAT, "What is the server called?")
    assert poll(cloud) == 1
    assert bot.texts(CHAT) == [f"The server is called {hostname.split('.')[0]}."]
    assert [command for name, command in cloud.driver.commands if name == guest] == ["hostname"]
    assert llm.requests[0]["messages"][-1] == {"role": "user", "content": "What is the server called?"}

    # the same conversation as in the API, paid the same way: two model calls at 2 cents, a tool call at half a
    # cent, the fraction paid at the end of the run
    [conversation] = client.get(f"/api/instances/{server_id}/agent/conversations").json()
    assert (conversation["cost_microcents"], conversation["charged_cents"], conversation["messages"]) == (
        4_500_000, 5, 4)
    assert sum(agent_debits(cloud)) == 5
    assert client.get("/api/agent/credits").json()["balance_cents"] == TRIAL - 5

    bot.send(CHAT, "/start")  # says where the chat's messages go
    assert poll(cloud) == 1 and f"It is linked to server {server_id} now" in bot.texts(CHAT)[-1]

    # the chat's next message continues the conversation; /new begins another
    llm.script = [Say("Nothing else.")]
    bot.send(CHAT, "Anything else?")
    assert poll(cloud) == 1 and bot.texts(CHAT)[-1] == "Nothing else."
    assert [m["role"] for m in llm.requests[-1]["messages"]] == [
        "system", "user", "assistant", "tool", "assistant", "user"]
    bot.send(CHAT, "/new")
    assert poll(cloud) == 1 and bot.texts(CHAT)[-1] == telegram.NEW_CONVERSATION
    llm.script = [Say("x" * 5000)]  # longer than a Telegram message may be
    bot.send(CHAT, "Say a lot")
    assert poll(cloud) == 1
    assert [m["role"] for m in llm.requests[-1]["messages"]] == ["system", "user"]
    long = bot.texts(CHAT)[-1]
    assert len(long) == telegram.MESSAGE_LIMIT and long.endswith(telegram.CUT_MARK)
    assert len(client.get(f"/api/instances/{server_id}/agent/conversations").json()) == 2

    # unlinked, the chat gets help and nothing reaches the model
    assert client.delete(f"/api/instances/{server_id}/agent/telegram").status_code == 204
    asked = len(llm.requests)
    bot.send(CHAT, "Still there?")
    assert poll(cloud) == 1 and bot.texts(CHAT)[-1] == telegram.NOT_LINKED and len(llm.requests) == asked


def test_a_change_waits_for_approval_in_the_api(cloud: Cloud, bot: FakeTelegram, llm: FakeModel) -> None:
    client = cloud.client()
    server_id = server(cloud)
    guest, _hostname = guest_of(cloud, server_id)
    cloud.driver.write_guest_file(guest, "/etc/motd", b"port 80\n", 0o644)
    link(cloud, server_id)
    llm.script = [Call("edit_file", {"path": "/etc/motd", "old_text": "80", "new_text": "8080"},
                       call_id="call_edit")]
    bot.send(CHAT, "Use port 8080")
    assert poll(cloud) == 1
    [conversation] = client.get(f"/api/instances/{server_id}/agent/conversations").json()
    reply = bot.texts(CHAT)[-1]
    assert reply.startswith("A change waits for your approval:"), reply
    approve = f"/api/instances/{server_id}/agent/conversations/{conversation['id']}/approve"
    assert approve in reply and '{"tool_call_id": "call_edit"}' in reply
    assert cloud.driver.read_guest_file(guest, "/etc/motd", 100) == b"port 80\n"  # nothing changed yet
    llm.script = [Say("Changed.")]
    approved = client.post(approve, json={"tool_call_id": "call_edit"})
    assert approved.status_code == 200 and approved.json()["stopped"] is None, approved.text
    assert cloud.driver.read_guest_file(guest, "/etc/motd", 100) == b"port 8080\n"


def test_refusals_are_short_answers_and_the_round_goes_on(cloud: Cloud, bot: FakeTelegram, llm: FakeModel) -> None:
    server_id = server(cloud)
    link(cloud, server_id)

    def set_status(status: InstanceStatus) -> None:
        with cloud.runtime.db.session() as session:
            row = instance_repository.instance(session, server_id, lock=True)
            assert row is not None
            row.status = status

    set_status(InstanceStatus.STOPPED)
    bot.send(CHAT, "hi")
    second = bot.send(CHAT, "hi again")
    assert poll(cloud) == 2 and cursor(cloud, bot) == second + 1
    assert bot.texts(CHAT) == ["The server is stopped: it is reached through its guest agent while it runs."] * 2
    set_status(InstanceStatus.SUSPENDED)
    bot.send(CHAT, "hi")
    assert poll(cloud) == 1 and bot.texts(CHAT)[-1] == "The server is suspended."
    set_status(InstanceStatus.RUNNING)

    with cloud.runtime.db.session() as session:  # the linking user's account is suspended: nothing runs as them
        user = session.get(User, cloud.customer.user.id)
        assert user is not None
        user.status = UserStatus.SUSPENDED
    bot.send(CHAT, "hi")
    assert poll(cloud) == 1 and bot.texts(CHAT)[-1] == "The account is suspended."
    with cloud.runtime.db.session() as session:
        user = session.get(User, cloud.customer.user.id)
        assert user is not None
        user.status = UserStatus.ACTIVE

    with cloud.runtime.db.session() as session:  # an empty pool
        billing.charge_agent(session, cloud.runtime.settings, cloud.customer.project_id, TRIAL, key="spent",
                             description="spent before")
    bot.send(CHAT, "hi")
    assert poll(cloud) == 1 and bot.texts(CHAT)[-1] == agent_service.OUT_OF_CREDIT
    assert llm.requests == []  # nothing refused reached the model

    # the server deleted: the link answers so
    client = cloud.client()
    set_status(InstanceStatus.DELETED)
    bot.send(CHAT, "hi")
    assert poll(cloud) == 1 and bot.texts(CHAT)[-1] == telegram.GONE
    assert client.get(f"/api/instances/{server_id}/agent/telegram").status_code == 404


def test_telegrams_429_pauses_the_rounds_for_its_retry_after(cloud: Cloud, bot: FakeTelegram) -> None:
    bot.send(CHAT, "/start")
    bot.throttle(30)
    assert poll(cloud) == 0 and bot.calls == ["getupdates"]
    assert poll(cloud) == 0 and bot.calls == ["getupdates"]  # paused: Telegram is not asked again
    with clock.travel(timedelta(seconds=31)):
        assert poll(cloud) == 1 and "This chat's link id is" in bot.texts(CHAT)[0]

        # a refused sendMessage ends the round there: the updates after it wait for a round after the pause
        bot.send(CHAT, "/start")
        later = bot.send(CHAT, "/start")
        bot.throttle(5, method="sendMessage")
        assert poll(cloud) == 1 and len(bot.sent) == 1
        assert cursor(cloud, bot) == later  # the second was not taken
        assert poll(cloud) == 0
        with clock.travel(timedelta(seconds=6)):
            assert poll(cloud) == 1
        assert len(bot.sent) == 2 and bot.pending() == [later]


def test_a_wrong_token_or_a_refused_url_ends_the_round_quietly(cloud: Cloud, bot: FakeTelegram) -> None:
    bot.send(CHAT, "/start")
    wrong = cloud.runtime.settings.model_copy(update={"telegram_bot_token": SecretStr("123:wrong")})
    assert telegram.poll(cloud.runtime.db, wrong, cloud.runtime.drivers) == 0
    private = cloud.runtime.settings.model_copy(update={"webhook_allow_private": False})
    assert telegram.poll(cloud.runtime.db, private, cloud.runtime.drivers) == 0
    assert bot.calls == [] and bot.pending() != []  # the wrong token reached no method; loopback was refused


class TestWithoutABot:
    @pytest.fixture
    def settings_overrides(self, bot: FakeTelegram) -> dict[str, Any]:
        return {"telegram_api_url": bot.api_url, "webhook_allow_private": True, "telegram_poll_schedule": NEVER}

    def test_the_round_does_nothing_and_linking_says_503(self, cloud: Cloud, bot: FakeTelegram) -> None:
        bot.send(CHAT, "/start")
        assert poll(cloud) == 0 and bot.calls == []
        server_id = server(cloud)
        answer = cloud.client().post(f"/api/instances/{server_id}/agent/telegram",
                                     json={"telegram_chat_id": link_id(cloud, 1)})
        assert answer.status_code == 503 and "CLOUDLET_TELEGRAM_BOT_TOKEN" in answer.text, answer.text
        assert cloud.client().get(f"/api/instances/{server_id}/agent/telegram").json() == {"telegram_chat_id": None}
