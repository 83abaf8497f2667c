"""The AI agent on a real Debian 12 server: a customer chats with the agent through a real `cloudlet serve`, the
model is a fake speaking the real chat-completions protocol on loopback (tests/fake_llm.py), and its tool calls
run inside the guest through its QEMU guest agent. What the tools say is what the guest says (its hostname, its
ssh unit), an edit allowed by the customer changes a file that SSH reads back, and the credit pool pays exactly
the priced usage until a run that exhausts it stops with 402 and a ledger that agrees, through the API alone.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest

from cloudlet.drivers.libvirt.guest import LibvirtDriver
from cloudlet.surfaces.deps import Runtime
from tests.e2e.test_debian_libvirt import DEBIAN_BOOT_SECONDS, debian_image, debian_template, new_key, ssh
from tests.e2e.test_instances_libvirt import (
    DELETION_SECONDS,
    GuestCluster,
    client,
    cluster,
    customer,
    idle,
    node,
    order,
    status_of,
    tiny_image,
)
from tests.fake_llm import Call, FakeModel, Say
from tests.integration.test_worker import wait_for

pytestmark = [pytest.mark.long(seconds=120), pytest.mark.engines("sqlite")]

__all__ = ["cluster", "debian_image", "debian_template", "node", "tiny_image"]

TRIAL = 100  # cents in every new agent credit pool
# 0.1 cent an input token, 0.2 an output token, a cent a tool call: the scripts' counts make whole cents
PRICES = {"agent_price_input_per_1k_cents": "100", "agent_price_output_per_1k_cents": "200",
          "agent_price_tool_call_cents": "1"}
CHAT_SECONDS = 120  # a chat waits on its tool calls inside a TCG guest
CONFIG = "/etc/agent-e2e.conf"


@pytest.fixture
def reserved_addresses() -> list[str]:
    """All of the pool but 203.0.113.240/29: test_debian_libvirt's guests, which may run at the same time on the same
    bridge, take the lowest free addresses above .128, and the shield, bandwidth and WAF tests take slices of their
    own between .200 and .223."""
    return ["203.0.113.0/25", "203.0.113.128/26", "203.0.113.192/27", "203.0.113.224/28", "203.0.113.248/29"]


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    # the customer's project (and its agent pool) is made in this process, with this trial credit
    return {"agent_trial_credit_cents": TRIAL, **PRICES}


@pytest.fixture
def llm() -> Iterator[FakeModel]:
    with FakeModel() as fake:
        yield fake


def priced(script: list[Call | Say]) -> int:
    """What the script costs in cents at PRICES: its model steps' tokens, and a tool call per Call."""
    cents = sum(Decimal(step.input_tokens) * Decimal(PRICES["agent_price_input_per_1k_cents"]) / 1000
                + Decimal(step.output_tokens) * Decimal(PRICES["agent_price_output_per_1k_cents"]) / 1000
                for step in script)
    cents += sum(isinstance(step, Call) for step in script) * Decimal(PRICES["agent_price_tool_call_cents"])
    assert cents == int(cents), "the script's prices make whole cents"
    return int(cents)


def chat(http: httpx.Client, instance_id: str, message: str, **extra: object) -> httpx.Response:
    return http.post(f"/api/instances/{instance_id}/agent/chat", json={"message": message, **extra},
                     timeout=CHAT_SECONDS)


def credits(http: httpx.Client) -> int:
    balance: int = http.get("/api/agent/credits").json()["balance_cents"]
    return balance


def test_the_agent_reads_and_edits_a_real_server_through_its_guest_agent_and_the_pool_pays_exactly(
        runtime: Runtime, node: LibvirtDriver, debian_template: int, cluster: GuestCluster, llm: FakeModel) -> None:
    cluster.extra = {"CLOUDLET_AGENT_BASE_URL": llm.base_url, "CLOUDLET_AGENT_API_KEY": llm.key,
                     "CLOUDLET_AGENT_MODEL": "fake-model", "CLOUDLET_AGENT_RETRIES": "0",
                     "CLOUDLET_WEBHOOK_ALLOW_PRIVATE": "true", "CLOUDLET_AGENT_TRIAL_CREDIT_CENTS": str(TRIAL),
                     **{f"CLOUDLET_{name.upper()}": value for name, value in PRICES.items()}}
    _process, url = cluster.serve()
    person = customer(runtime)
    key, public = new_key()
    with client(url, person) as http:
        saved = http.post("/api/ssh-keys", json={"name": "laptop", "public_key": public})
        assert saved.status_code == 201, saved.text
        body = order(runtime, person, "agent-1.example.com") | {"os_template_id": debian_template,
                                                                "ssh_key_ids": [saved.json()["id"]]}
        created = http.post("/api/instances", json=body)
        assert created.status_code == 201, created.text
        server = idle(http, created.json()["id"], DEBIAN_BOOT_SECONDS)
        server_id, address = server["id"], server["main_ip"]
        assert ipaddress.ip_address(address) in ipaddress.ip_network("203.0.113.240/29")  # its own slice
        assert credits(http) == TRIAL

        # read-only: the tools' outputs are the guest's own
        asked: list[Call | Say] = [
            Call("shell", {"command": "hostname"}, input_tokens=60, output_tokens=10),
            Call("shell", {"command": "systemctl is-active ssh"}, input_tokens=80, output_tokens=10),
            Say("agent-1 is up and ssh is active.", input_tokens=100, output_tokens=20)]
        llm.script = list(asked)
        answer = chat(http, server_id, "Is ssh running?")
        assert answer.status_code == 200, answer.text
        transcript = answer.json()["transcript"]
        assert [m["role"] for m in transcript] == ["user", "assistant", "tool", "assistant", "tool", "assistant"]
        ran = [(m["arguments"]["command"], m["exit_status"], m["content"], m["error"])
               for m in transcript if m["role"] == "tool"]
        assert ran == [("hostname", 0, "agent-1\n", None), ("systemctl is-active ssh", 0, "active\n", None)], ran
        assert ssh(address, "hostname", pkey=key) == "agent-1\n"
        assert transcript[-1]["content"] == "agent-1 is up and ssh is active." and answer.json()["stopped"] is None
        # the model read what the guest said
        assert llm.requests[1]["messages"][-1] == {"role": "tool", "tool_call_id": transcript[2]["tool_call_id"],
                                                   "content": "agent-1\n"}
        conversation = answer.json()["id"]
        assert answer.json()["charged_cents"] == priced(asked) == TRIAL - credits(http)

        # with the customer's leave, an edit of a file written over SSH; SSH reads the change, mode kept
        ssh(address, f"printf 'listen 80\\nworkers 2\\n' > {CONFIG} && chmod 640 {CONFIG}", pkey=key)
        edit = {"path": CONFIG, "old_text": "listen 80", "new_text": "listen 8080"}
        changed: list[Call | Say] = [Call("edit_file", edit, input_tokens=120, output_tokens=30),
                                     Say("Now it listens on 8080.", input_tokens=140, output_tokens=10)]
        llm.script = list(changed)
        answer = chat(http, server_id, "Listen on 8080", conversation_id=conversation, allow_changes=True)
        assert answer.status_code == 200, answer.text
        diff = answer.json()["transcript"][-2]
        assert (diff["tool"], diff["exit_status"], diff["error"]) == ("edit_file", 0, None), diff
        assert "-listen 80\n+listen 8080\n" in diff["content"], diff["content"]
        assert ssh(address, f"cat {CONFIG}; stat -c %a {CONFIG}", pkey=key) == "listen 8080\nworkers 2\n640\n"
        # the pool paid exactly the priced usage of both requests
        spent = priced(asked) + priced(changed)
        assert (answer.json()["cost_microcents"], answer.json()["charged_cents"]) == (spent * 1_000_000, spent)
        assert credits(http) == TRIAL - spent

        # a run that costs more than the pool holds stops with 402; what ran is kept and paid to the last cent
        left = credits(http)
        first = Call("shell", {"command": "uptime"}, input_tokens=100, output_tokens=10)
        too_much = Call("shell", {"command": "hostname"}, input_tokens=10 * left, output_tokens=10)  # left + 2 cents
        assert priced([first]) < left
        llm.script = [first, too_much, Say("never")]
        asked_before = len(llm.requests)
        stopped = chat(http, server_id, "How loaded is it?")
        assert stopped.status_code == 402 and "Out of AI credits" in stopped.text, stopped.text
        assert len(llm.requests) == asked_before + 2  # nothing more was asked of the model
        assert credits(http) == 0  # the ledger took what was left
        listed = http.get(f"/api/instances/{server_id}/agent/conversations").json()
        [last] = [c for c in listed if c["id"] != conversation]
        assert last["charged_cents"] == left
        # its cost: the first step and its tool call, and the model call that asked for more than was left
        cost = priced([first, Say("", input_tokens=too_much.input_tokens, output_tokens=too_much.output_tokens)])
        assert last["cost_microcents"] == cost * 1_000_000 > left * 1_000_000
        kept = http.get(f"/api/instances/{server_id}/agent/conversations/{last['id']}").json()["transcript"]
        assert [m["role"] for m in kept] == ["user", "assistant", "tool", "assistant"]
        assert kept[2]["exit_status"] == 0 and "load average" in kept[2]["content"], kept[2]
        assert json.loads(kept[3]["tool_calls"][0]["arguments"]) == {"command": "hostname"}  # asked, never run

        http.request("DELETE", f"/api/instances/{server_id}", json={"mode": "immediate"})
        wait_for(lambda: status_of(http, server_id) == "gone", "the deletion", seconds=DELETION_SECONDS)
