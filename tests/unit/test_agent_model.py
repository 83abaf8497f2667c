"""The agent's model client against a fake server that speaks the OpenAI chat-completions protocol."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from cloudlet.agent.model import ModelEndpoint, ModelFailed, Reply, ToolCall, complete
from tests.fake_llm import Call, Fail, FakeModel, Hang, Raw, Say
from tests.helpers import free_port

MODEL = "fake-model-1"
MESSAGES: list[dict[str, Any]] = [
    {"role": "system", "content": "You manage Cloudlet instances."},
    {"role": "user", "content": "Reboot web-1, please."},
]
TOOLS: list[dict[str, Any]] = [{"type": "function", "function": {
    "name": "reboot_instance", "description": "Reboot one instance.",
    "parameters": {"type": "object", "properties": {"instance": {"type": "string"}}, "required": ["instance"]},
}}]


class Pauses:
    """A sleep function that records the pauses it is asked for instead of waiting."""

    def __init__(self) -> None:
        self.taken: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.taken.append(seconds)


@pytest.fixture
def fake() -> Iterator[FakeModel]:
    with FakeModel() as server:
        yield server


def endpoint(fake: FakeModel, **changes: Any) -> ModelEndpoint:
    values: dict[str, Any] = {"base_url": fake.base_url, "api_key": fake.key, "model": MODEL,
                              "timeout_seconds": 5.0, "retries": 3, "backoff_seconds": 0.5}
    values.update(changes)
    return ModelEndpoint(**values)


def test_a_text_answer_comes_back_with_its_usage(fake: FakeModel) -> None:
    fake.script = [Say("web-1 is rebooting.", input_tokens=42, output_tokens=7)]
    reply = complete(endpoint(fake), MESSAGES, TOOLS, sleep=Pauses())
    assert reply == Reply(content="web-1 is rebooting.", tool_calls=(), input_tokens=42, output_tokens=7,
                          finish_reason="stop")


def test_the_request_carries_the_model_the_messages_and_the_tools(fake: FakeModel) -> None:
    fake.script = [Say("ok")]
    complete(endpoint(fake), MESSAGES, TOOLS, sleep=Pauses())
    assert fake.requests == [{"model": MODEL, "messages": MESSAGES, "tools": TOOLS, "tool_choice": "auto"}]


def test_without_tools_the_request_names_none(fake: FakeModel) -> None:
    fake.script = [Say("ok")]
    complete(endpoint(fake), MESSAGES, [], sleep=Pauses())
    assert fake.requests == [{"model": MODEL, "messages": MESSAGES}]


def test_a_tool_call_is_parsed_with_its_arguments(fake: FakeModel) -> None:
    fake.script = [Call("reboot_instance", {"instance": "web-1", "hard": False}, 120, 18, call_id="call_abc123")]
    reply = complete(endpoint(fake), MESSAGES, TOOLS, sleep=Pauses())
    assert reply.tool_calls == (ToolCall(id="call_abc123", name="reboot_instance",
                                         arguments='{"instance": "web-1", "hard": false}'),)
    assert reply.content is None
    assert reply.finish_reason == "tool_calls"
    assert (reply.input_tokens, reply.output_tokens) == (120, 18)


def test_a_429_waits_as_long_as_retry_after_says_then_succeeds(fake: FakeModel) -> None:
    fake.script = [Fail(429, "Rate limit reached for requests.", retry_after=2), Say("ok")]
    pauses = Pauses()
    reply = complete(endpoint(fake), MESSAGES, TOOLS, sleep=pauses)
    assert reply.content == "ok"
    assert pauses.taken == [2.0]
    assert len(fake.requests) == 2


def test_a_retry_after_beyond_thirty_seconds_is_capped(fake: FakeModel) -> None:
    fake.script = [Fail(429, "Slow down.", retry_after=3600), Say("ok")]
    pauses = Pauses()
    complete(endpoint(fake), MESSAGES, TOOLS, sleep=pauses)
    assert pauses.taken == [30.0]


def test_two_500s_are_retried_with_a_doubling_pause(fake: FakeModel) -> None:
    fake.script = [Fail(500, "The server had an error."), Fail(503, "Overloaded."), Say("ok")]
    pauses = Pauses()
    reply = complete(endpoint(fake), MESSAGES, TOOLS, sleep=pauses)
    assert reply.content == "ok"
    assert pauses.taken == [0.5, 1.0]
    assert len(fake.requests) == 3


def test_a_400_fails_at_once_with_the_providers_message(fake: FakeModel) -> None:
    fake.script = [Fail(400, "Invalid schema for function 'reboot_instance'."), Say("never")]
    pauses = Pauses()
    with pytest.raises(ModelFailed) as failed:
        complete(endpoint(fake), MESSAGES, TOOLS, sleep=pauses)
    assert "400" in failed.value.reason
    assert "Invalid schema for function 'reboot_instance'" in failed.value.reason
    assert pauses.taken == []
    assert len(fake.requests) == 1


def test_when_the_retries_run_out_the_call_fails(fake: FakeModel) -> None:
    fake.script = [Fail(502, "Bad gateway."), Fail(502, "Bad gateway."), Fail(502, "Bad gateway."), Say("too late")]
    pauses = Pauses()
    with pytest.raises(ModelFailed) as failed:
        complete(endpoint(fake, retries=2), MESSAGES, TOOLS, sleep=pauses)
    assert "HTTP 502" in failed.value.reason
    assert "3 attempts" in failed.value.reason
    assert pauses.taken == [0.5, 1.0]
    assert len(fake.requests) == 3


def test_a_hanging_server_fails_with_the_timeout(fake: FakeModel) -> None:
    fake.script = [Hang(10)]
    started = time.monotonic()
    with pytest.raises(ModelFailed) as failed:
        complete(endpoint(fake, timeout_seconds=0.5, retries=0), MESSAGES, TOOLS, sleep=Pauses())
    assert time.monotonic() - started < 5
    assert "timed out after 0.5 s" in failed.value.reason


def test_an_unreachable_endpoint_is_retried_then_fails() -> None:
    gone = ModelEndpoint(base_url=f"http://127.0.0.1:{free_port()}/v1", api_key="sk-x", model=MODEL, retries=1)
    pauses = Pauses()
    with pytest.raises(ModelFailed) as failed:
        complete(gone, MESSAGES, TOOLS, sleep=pauses)
    assert "could not be reached (ConnectError)" in failed.value.reason
    assert pauses.taken == [0.5]


def test_a_wrong_key_fails_at_once_without_showing_the_key(fake: FakeModel) -> None:
    fake.script = [Say("never")]
    wrong = "sk-wrong-0123456789abcdef"
    pauses = Pauses()
    with pytest.raises(ModelFailed) as failed:
        complete(endpoint(fake, api_key=wrong), MESSAGES, TOOLS, sleep=pauses)
    assert "HTTP 401" in failed.value.reason
    assert "Incorrect API key provided" in failed.value.reason
    assert wrong not in str(failed.value)
    assert pauses.taken == []
    assert fake.requests == []  # the fake refused it before taking a step
    assert fake.script == [Say("never")]


def test_a_key_the_provider_quotes_back_is_hidden(fake: FakeModel) -> None:
    fake.script = [Fail(403, f"Project access denied for key {fake.key}.")]
    with pytest.raises(ModelFailed) as failed:
        complete(endpoint(fake), MESSAGES, TOOLS, sleep=Pauses())
    assert fake.key not in failed.value.reason
    assert "for key ***" in failed.value.reason


def test_the_key_is_not_in_the_endpoints_repr(fake: FakeModel) -> None:
    assert fake.key not in repr(endpoint(fake))


@pytest.mark.parametrize(("body", "says"), [
    ("this is not json", "is not JSON"),
    ('{"id": "chatcmpl-1", "object": "chat.completion", "choices": []}', "has no choices"),
    ('{"choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}]}',
     "has no usage"),
    ('{"choices": [{"index": 0, "finish_reason": "stop"}], "usage": {"prompt_tokens": 1, "completion_tokens": 1}}',
     "has no message"),
    ('{"choices": [{"message": {"content": null, "tool_calls": [{"id": "c1", "type": "function"}]}}], '
     '"usage": {"prompt_tokens": 1, "completion_tokens": 1}}', "tool call without a function"),
])
def test_an_answer_out_of_shape_fails_saying_so(fake: FakeModel, body: str, says: str) -> None:
    fake.script = [Raw(body), Say("never")]
    pauses = Pauses()
    with pytest.raises(ModelFailed) as failed:
        complete(endpoint(fake), MESSAGES, TOOLS, sleep=pauses)
    assert says in failed.value.reason
    assert pauses.taken == []


def test_an_exhausted_script_answers_500(fake: FakeModel) -> None:
    with pytest.raises(ModelFailed) as failed:
        complete(endpoint(fake, retries=0), MESSAGES, TOOLS, sleep=Pauses())
    assert failed.value.reason == "The model endpoint answered HTTP 500: script exhausted."
