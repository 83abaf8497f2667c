"""The AI agent on the primary surface, on both engines: a fake model server that speaks the real chat-completions
protocol (tests/fake_llm.py) drives the loop, and the tools run through the fake driver's guest agent. What ran
and what it cost, exactly; the read-only default; the refusals (scopes, tenancy, bad input, a suspended or
stopped server, an empty pool, no model); a model that fails; a pool that runs dry in the middle of a run."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from cloudlet.billing import repository as billing_repository
from cloudlet.billing import service as billing
from cloudlet.billing.models import EntryKind, Pool
from cloudlet.images.models import ImageCapability
from cloudlet.instances import repository as instance_repository
from cloudlet.instances.models import InstanceStatus
from tests.cloud import Cloud
from tests.fake_llm import Call, Fail, FakeModel, Say
from tests.helpers import make_user, mint_token
from tests.integration.test_instances import order, running

TRIAL = 100  # cents in every new agent credit pool


@pytest.fixture
def llm() -> Iterator[FakeModel]:
    with FakeModel() as fake:
        yield fake


@pytest.fixture
def settings_overrides(llm: FakeModel) -> dict[str, Any]:
    return agent_settings(llm)


def agent_settings(llm: FakeModel) -> dict[str, Any]:
    # 10 input tokens cost 1 cent, 5 output tokens 1 cent; a tool call half a cent (fractions add up)
    return {"agent_base_url": llm.base_url, "agent_api_key": llm.key, "agent_model": "fake-model",
            "webhook_allow_private": True, "agent_trial_credit_cents": TRIAL, "agent_retries": 0,
            "agent_price_input_per_1k_cents": "100", "agent_price_output_per_1k_cents": "200",
            "agent_price_tool_call_cents": "0.5"}


def server(cloud: Cloud, client: httpx.Client | None = None) -> str:
    """A running server of the customer's whose image has the guest agent; its id."""
    cloud.image_can(ImageCapability.CLOUD_INIT, ImageCapability.GUEST_AGENT, ImageCapability.SSH)
    client = client or cloud.client()
    created = client.post("/api/instances", json=order(cloud))
    assert created.status_code == 201, created.text
    found: str = running(client, created.json()["id"])["id"]
    return found


def guest_of(cloud: Cloud, server_id: str) -> tuple[str, str]:
    """The server's guest name and hostname on the fake node."""
    with cloud.runtime.db.session(write=False) as session:
        row = instance_repository.instance(session, server_id)
        assert row is not None
        return row.guest_name, row.hostname


def agent_debits(cloud: Cloud) -> list[int]:
    with cloud.runtime.db.session(write=False) as session:
        pool = billing_repository.find_wallet(session, cloud.customer.project_id, Pool.AGENT)
        assert pool is not None
        return [-entry.amount_cents for entry in billing_repository.entries(session, pool.id, type_=None, limit=100,
                                                                            offset=0)
                if entry.kind is EntryKind.AGENT_USAGE]


def test_the_agent_runs_tools_inside_the_server_and_answers_at_an_exact_cost(cloud: Cloud, llm: FakeModel) -> None:
    client = cloud.client()
    server_id = server(cloud)
    guest, hostname = guest_of(cloud, server_id)
    llm.script = [Call("shell", {"command": "hostname"}), Call("shell", {"command": "systemctl is-active ssh"}),
                  Say("The server is up and ssh is active.")]
    answer = client.post(f"/api/instances/{server_id}/agent/chat", json={"message": "Is ssh running?"})
    assert answer.status_code == 200, answer.text
    conversation = answer.json()
    transcript = conversation["transcript"]
    assert [m["role"] for m in transcript] == ["user", "assistant", "tool", "assistant", "tool", "assistant"]
    assert (transcript[2]["tool"], transcript[2]["arguments"], transcript[2]["exit_status"]) == (
        "shell", {"command": "hostname"}, 0)
    short = hostname.split(".")[0]  # what `hostname` prints in the guest
    assert transcript[2]["content"] == f"{short}\n" and transcript[4]["content"] == "active\n"
    assert transcript[1]["tool_calls"][0]["id"] == transcript[2]["tool_call_id"]
    assert transcript[-1]["content"] == "The server is up and ssh is active." and conversation["stopped"] is None
    assert [command for name, command in cloud.driver.commands if name == guest] == [
        "hostname", "systemctl is-active ssh"]
    # the model read what ran: the second request ends with the first tool's output
    assert llm.requests[1]["messages"][-1] == {"role": "tool", "tool_call_id": transcript[2]["tool_call_id"],
                                               "content": f"{short}\n"}
    assert llm.requests[0]["messages"][0]["role"] == "system" and llm.requests[0]["tools"]
    # three model calls at 2 cents, two tool calls at half a cent: 7 cents, paid once each
    assert (conversation["cost_microcents"], conversation["charged_cents"]) == (7_000_000, 7)
    assert (conversation["input_tokens"], conversation["output_tokens"], conversation["tool_calls"]) == (30, 15, 2)
    assert sum(agent_debits(cloud)) == 7
    assert client.get("/api/agent/credits").json() == {"balance_cents": TRIAL - 7, "trial_remaining_cents": TRIAL - 7}

    # the conversation goes on; it is listed, read and deleted
    llm.script = [Say("Nothing else to do.")]
    more = client.post(f"/api/instances/{server_id}/agent/chat",
                       json={"message": "Anything else?", "conversation_id": conversation["id"]})
    assert more.status_code == 200, more.text
    assert more.json()["messages"] == 8 and more.json()["charged_cents"] == 9
    assert [m["role"] for m in llm.requests[-1]["messages"][-2:]] == ["assistant", "user"]
    listed = client.get(f"/api/instances/{server_id}/agent/conversations").json()
    assert [c["id"] for c in listed] == [conversation["id"]] and "transcript" not in listed[0]
    url = f"/api/instances/{server_id}/agent/conversations/{conversation['id']}"
    assert client.get(url).json()["transcript"] == more.json()["transcript"]
    assert client.delete(url).status_code == 204
    assert client.get(url).status_code == 404
    assert sum(agent_debits(cloud)) == 9  # what it cost stays paid


def test_a_change_waits_for_the_customers_approval_unless_changes_are_allowed(cloud: Cloud, llm: FakeModel) -> None:
    client = cloud.client()
    server_id = server(cloud)
    guest, _hostname = guest_of(cloud, server_id)
    cloud.driver.write_guest_file(guest, "/etc/motd", b"hello\nport 80\n", 0o600)
    edit = {"path": "/etc/motd", "old_text": "port 80", "new_text": "port 8080"}
    llm.script = [Call("shell", {"command": "hostname"}), Call("edit_file", edit, call_id="call_edit")]
    asked = client.post(f"/api/instances/{server_id}/agent/chat", json={"message": "Use 8080"})
    assert asked.status_code == 200, asked.text
    waiting = asked.json()
    assert "waits for your approval" in waiting["stopped"]
    read, pending = [m for m in waiting["transcript"] if m["role"] == "tool"]
    assert read["approval"] is None and read["exit_status"] == 0  # a reading command ran at once
    assert (pending["tool"], pending["approval"], pending["tool_call_id"]) == ("edit_file", "pending", "call_edit")
    assert cloud.driver.read_guest_file(guest, "/etc/motd", 100) == b"hello\nport 80\n"
    assert len(llm.requests) == 2 and waiting["charged_cents"] == 5  # two model calls, one tool call: 4.5 cents

    approve = f"/api/instances/{server_id}/agent/conversations/{waiting['id']}/approve"
    assert client.post(approve, json={"tool_call_id": "call_other"}).status_code == 409
    llm.script = [Call("read_file", {"path": "/etc/motd"}), Say("Changed.")]
    approved = client.post(approve, json={"tool_call_id": "call_edit"})
    assert approved.status_code == 200, approved.text
    tools = [m for m in approved.json()["transcript"] if m["role"] == "tool"]
    assert [m["approval"] for m in tools] == [None, "approved", None]
    assert "-port 80\n+port 8080\n" in tools[1]["content"] and tools[1]["exit_status"] == 0
    assert tools[2]["content"] == "hello\nport 8080\n" and approved.json()["stopped"] is None
    assert cloud.driver.read_guest_file(guest, "/etc/motd", 100) == b"hello\nport 8080\n"
    located = cloud.driver.locate_guest_path(guest, "/etc/motd")
    assert located.found is not None and located.found.mode == 0o600  # the file keeps its mode
    # the model read the edit's diff in place of the wait
    assert any(m.get("tool_call_id") == "call_edit" and "+port 8080" in m["content"]
               for m in llm.requests[2]["messages"])
    assert client.post(approve, json={"tool_call_id": "call_edit"}).status_code == 409  # once only

    # denied: nothing runs, and the model hears so; a command that writes waits as an edit does
    llm.script = [Call("shell", {"command": "rm -rf /srv; echo done"}, call_id="call_rm")]
    assert "approval" in client.post(f"/api/instances/{server_id}/agent/chat",
                                     json={"message": "Clean up", "conversation_id": waiting["id"]}).json()["stopped"]
    llm.script = [Say("Understood, I leave it.")]
    denied = client.post(approve, json={"tool_call_id": "call_rm", "approve": False}).json()
    assert [m["approval"] for m in denied["transcript"] if m["role"] == "tool"][-1] == "denied"
    assert not any("rm" in command for _name, command in cloud.driver.commands)
    assert any(m.get("tool_call_id") == "call_rm" and m["content"].startswith("denied")
               for m in llm.requests[-1]["messages"])

    # with changes allowed for the request, the same call runs at once
    llm.script = [Call("edit_file", {"path": "/etc/motd", "old_text": "8080", "new_text": "9090"}), Say("Done.")]
    allowed = client.post(f"/api/instances/{server_id}/agent/chat",
                          json={"message": "Use 9090", "allow_changes": True}).json()
    assert allowed["stopped"] is None
    assert cloud.driver.read_guest_file(guest, "/etc/motd", 100) == b"hello\nport 9090\n"

    # a call out of shape, or to a tool that does not exist, is the tool's answer to the model, not an error
    llm.script = [Call("format_disk", {}), Call("edit_file", {"path": "/etc/motd", "old_text": "absent",
                                                            "new_text": "x"}), Say("Sorry.")]
    odd = client.post(f"/api/instances/{server_id}/agent/chat",
                      json={"message": "Go", "allow_changes": True}).json()
    errors = [m["error"] for m in odd["transcript"] if m["role"] == "tool"]
    assert "there is no tool 'format_disk'" in errors[0] and "occurs 0 times" in errors[1]


def test_a_pool_that_runs_dry_stops_the_run_with_402_and_a_ledger_that_agrees(cloud: Cloud, llm: FakeModel) -> None:
    client = cloud.client()
    server_id = server(cloud)
    with cloud.runtime.db.session() as session:  # leave 3 cents in the pool
        billing.charge_agent(session, cloud.runtime.settings, cloud.customer.project_id, TRIAL - 3, key="spent",
                             description="spent before")
    llm.script = [Call("shell", {"command": "hostname"}), Call("shell", {"command": "uptime"}), Say("never")]
    stopped = client.post(f"/api/instances/{server_id}/agent/chat", json={"message": "Check"})
    assert stopped.status_code == 402 and "Out of AI credits" in stopped.text, stopped.text
    [conversation] = client.get(f"/api/instances/{server_id}/agent/conversations").json()
    # 2 cents, half a cent, then 2 more cents of which the pool held 1: the run stopped there
    assert (conversation["cost_microcents"], conversation["charged_cents"]) == (4_500_000, 3)
    assert sorted(agent_debits(cloud)) == [1, 2, TRIAL - 3]
    assert sum(agent_debits(cloud)) == TRIAL and client.get("/api/agent/credits").json()["balance_cents"] == 0
    assert len(llm.requests) == 2  # nothing more was asked of the model
    again = client.post(f"/api/instances/{server_id}/agent/chat",
                        json={"message": "Check", "conversation_id": conversation["id"]})
    assert again.status_code == 402 and len(llm.requests) == 2


def test_a_failing_model_is_recorded_and_not_charged(cloud: Cloud, llm: FakeModel) -> None:
    client = cloud.client()
    server_id = server(cloud)
    llm.script = [Fail(400, "This model does not support tools.")]
    failed = client.post(f"/api/instances/{server_id}/agent/chat", json={"message": "Hi"})
    assert failed.status_code == 502 and "does not support tools" in failed.text, failed.text
    [listed] = client.get(f"/api/instances/{server_id}/agent/conversations").json()
    conversation = client.get(f"/api/instances/{server_id}/agent/conversations/{listed['id']}").json()
    assert [m["role"] for m in conversation["transcript"]] == ["user", "assistant"]
    assert "does not support tools" in conversation["transcript"][1]["error"]
    assert conversation["charged_cents"] == 0 and agent_debits(cloud) == []
    llm.script = [Say("Hello.")]  # the failed step is left out of what the model reads next
    client.post(f"/api/instances/{server_id}/agent/chat", json={"message": "Hi", "conversation_id": listed["id"]})
    assert [m["role"] for m in llm.requests[-1]["messages"]] == ["system", "user", "user"]


def test_refusals(cloud: Cloud, llm: FakeModel) -> None:
    client = cloud.client()
    server_id = server(cloud)
    chat = f"/api/instances/{server_id}/agent/chat"
    assert client.post(chat, json={"message": "  "}).status_code == 422
    assert client.post(chat, json={"message": "x", "conversation_id": 99}).status_code == 404
    reader = cloud.api.as_(mint_token(cloud.runtime, cloud.customer, "agent:read"))
    assert reader.post(chat, json={"message": "hi"}).status_code == 403
    assert reader.get(f"/api/instances/{server_id}/agent/conversations").status_code == 200
    stranger = make_user(cloud.runtime, "stranger@example.com")
    assert cloud.api.as_(stranger.token).post(chat, json={"message": "hi"}).status_code == 404
    assert cloud.api.as_(stranger.token).get(f"/api/instances/{server_id}/agent/conversations").status_code == 404
    # another server's conversation is not this one's
    llm.script = [Say("ok")]
    first = client.post(chat, json={"message": "hi"}).json()
    other = server(cloud)
    assert client.post(f"/api/instances/{other}/agent/chat",
                       json={"message": "x", "conversation_id": first["id"]}).status_code == 404
    assert client.get(f"/api/instances/{other}/agent/conversations/{first['id']}").status_code == 404
    with cloud.runtime.db.session() as session:
        row = instance_repository.instance(session, other, lock=True)
        assert row is not None
        row.status = InstanceStatus.SUSPENDED
    assert client.post(f"/api/instances/{other}/agent/chat", json={"message": "x"}).status_code == 403
    with cloud.runtime.db.session() as session:
        row = instance_repository.instance(session, other, lock=True)
        assert row is not None
        row.status = InstanceStatus.STOPPED
    assert client.post(f"/api/instances/{other}/agent/chat", json={"message": "x"}).status_code == 409
    assert len(llm.requests) == 1  # nothing refused reached the model


class TestWithoutAModel:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, Any]:
        return {"agent_trial_credit_cents": TRIAL}

    def test_the_chat_says_503(self, cloud: Cloud) -> None:
        server_id = server(cloud)
        answer = cloud.client().post(f"/api/instances/{server_id}/agent/chat", json={"message": "hi"})
        assert answer.status_code == 503 and "CLOUDLET_AGENT_BASE_URL" in answer.text, answer.text


class TestAnEmptyPool:
    @pytest.fixture
    def settings_overrides(self, llm: FakeModel) -> dict[str, Any]:
        return {"agent_base_url": llm.base_url, "agent_api_key": llm.key, "agent_model": "m",
                "webhook_allow_private": True}

    def test_the_chat_says_402_before_anything_runs(self, cloud: Cloud, llm: FakeModel) -> None:
        server_id = server(cloud)
        answer = cloud.client().post(f"/api/instances/{server_id}/agent/chat", json={"message": "hi"})
        assert answer.status_code == 402, answer.text
        assert llm.requests == [] and cloud.client().get(f"/api/instances/{server_id}/agent/conversations").json() \
            == []


def test_the_pool_is_funded_from_the_wallet_or_by_an_operator(cloud: Cloud) -> None:
    client = cloud.client()
    wallet = client.get("/api/wallet").json()["balance_cents"]
    once = {"Idempotency-Key": "fund-1"}
    funded = client.post("/api/agent/credits", json={"amount_cents": 50}, headers=once)
    assert funded.status_code == 201 and funded.json()["balance_cents"] == TRIAL + 50, funded.text
    assert client.post("/api/agent/credits", json={"amount_cents": 50}, headers=once).json() == funded.json()
    assert client.get("/api/agent/credits").json()["balance_cents"] == TRIAL + 50  # moved once
    assert client.get("/api/wallet").json()["balance_cents"] == wallet - 50
    short = client.post("/api/agent/credits", json={"amount_cents": wallet})
    assert short.status_code == 402 and client.get("/api/wallet").json()["balance_cents"] == wallet - 50
    agent_only = cloud.api.as_(mint_token(cloud.runtime, cloud.customer, "agent:read", "agent:write"))
    assert agent_only.post("/api/agent/credits", json={"amount_cents": 1}).status_code == 403
    assert client.post("/api/agent/credits", json={"amount_cents": 0}).status_code == 422

    operator = cloud.api.as_(make_user(cloud.runtime, "ops@example.com", admin=True).token)
    credited = operator.post(f"/v1/admin/wallets/{cloud.customer.project_id}/credits",
                             json={"amount_cents": 25, "pool": "agent", "reason": "goodwill"})
    assert credited.status_code == 201, credited.text
    assert client.get("/api/agent/credits").json()["balance_cents"] == TRIAL + 75
    assert client.get("/api/wallet").json()["balance_cents"] == wallet - 50


def events(answer: httpx.Response) -> list[tuple[str, dict[str, Any]]]:
    """A Server-Sent Events answer's events: (name, data as JSON); comment lines left out."""
    found = []
    for block in answer.text.split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines() if line and not line.startswith(":"))
        if lines:
            found.append((lines["event"], json.loads(lines["data"])))
    return found


def test_the_steps_stream_as_server_sent_events(cloud: Cloud, llm: FakeModel) -> None:
    client = cloud.client()
    server_id = server(cloud)
    stream = {"Accept": "text/event-stream"}
    llm.script = [Call("shell", {"command": "hostname"}), Say("Done.")]
    answer = client.post(f"/api/instances/{server_id}/agent/chat", json={"message": "Name?"}, headers=stream)
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/event-stream")
    sent = events(answer)
    assert [name for name, _ in sent] == ["message"] * 4 + ["done"]
    assert [data["role"] for _, data in sent[:4]] == ["user", "assistant", "tool", "assistant"]
    assert [data["seq"] for _, data in sent[:4]] == [1, 2, 3, 4]
    done = sent[-1][1]
    assert done["transcript"] == [data for _, data in sent[:4]] and done["charged_cents"] == 5

    llm.script = [Fail(400, "No such model.")]  # a refusal during the run comes as an error event
    failed = events(client.post(f"/api/instances/{server_id}/agent/chat",
                                json={"message": "Again", "conversation_id": done["id"]}, headers=stream))
    assert [name for name, _ in failed] == ["message", "message", "error"]
    assert failed[0][1]["seq"] == 5 and "No such model" in failed[-1][1]["message"]


class TestAFullConversation:
    @pytest.fixture
    def settings_overrides(self, llm: FakeModel) -> dict[str, Any]:
        return agent_settings(llm) | {"agent_max_messages": 10}

    def test_it_stops_its_run_and_takes_no_more_messages(self, cloud: Cloud, llm: FakeModel) -> None:
        client = cloud.client()
        server_id = server(cloud)
        llm.script = [*(Call("shell", {"command": "hostname"}) for _ in range(6)), Say("never")]
        full = client.post(f"/api/instances/{server_id}/agent/chat", json={"message": "Loop"}).json()
        assert "conversation is full" in full["stopped"] and full["messages"] == 11
        assert len(llm.requests) == 5  # the run stopped before a sixth model call
        more = client.post(f"/api/instances/{server_id}/agent/chat",
                           json={"message": "More", "conversation_id": full["id"]})
        assert more.status_code == 409 and "start a new one" in more.text, more.text
        llm.script = [Say("Fresh.")]
        assert client.post(f"/api/instances/{server_id}/agent/chat", json={"message": "New"}).status_code == 200
