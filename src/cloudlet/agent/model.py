"""The agent's model: one chat-completions call over the OpenAI-compatible protocol, with tool calling.

Any provider that speaks POST {base_url}/chat/completions (OpenAI, a vLLM or llama.cpp server, a
gateway) will do. Rate limits (429), server errors (5xx) and transport errors (refused connections,
timeouts) are retried with a doubling pause, since they usually pass; any other 4xx means the request
or the key is wrong and fails at once. Failures become ModelFailed with a short sentence a person can
act on; neither the API key nor the conversation ever reaches a log line or an error.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeGuard

import httpx
import structlog

log = structlog.get_logger(__name__)

MAX_RETRY_AFTER_SECONDS = 30.0  # a provider's Retry-After is honoured up to this long
MAX_PROVIDER_MESSAGE_CHARS = 300  # providers' error messages can be long (whole validation reports)
RETRYABLE_STATUSES = frozenset({429})  # and every 5xx
# Transport errors worth another attempt; others (an unsupported scheme, a bad proxy) are configuration.
RETRYABLE_ERRORS: tuple[type[httpx.TransportError], ...] = (
    httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)


@dataclass(frozen=True)
class ModelEndpoint:
    """Where the model is, how to sign in to it, which model to ask, and how patiently."""

    base_url: str  # ends in /v1, e.g. http://127.0.0.1:PORT/v1
    api_key: str = field(repr=False)
    model: str
    timeout_seconds: float = 60.0
    retries: int = 3  # extra attempts on 429, 5xx and connection errors
    backoff_seconds: float = 0.5  # first pause; doubles each time; a Retry-After (seconds) replaces it


@dataclass(frozen=True)
class ToolCall:
    """One function the model asks to run."""

    id: str
    name: str
    arguments: str  # the JSON text the model gave, unparsed: whether it is valid is the caller's question


@dataclass(frozen=True)
class Reply:
    """The model's next message and what it cost."""

    content: str | None
    tool_calls: tuple[ToolCall, ...]
    input_tokens: int  # usage.prompt_tokens
    output_tokens: int  # usage.completion_tokens
    finish_reason: str


class ModelFailed(Exception):
    """The model gave no usable answer; reason says why in one sentence (never the key)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class _Miss:
    """One attempt that gave no reply: why, whether another may help, and how long the provider asked to wait."""

    reason: str
    retryable: bool
    retry_after: float | None = None


def complete(endpoint: ModelEndpoint, messages: Sequence[dict[str, Any]], tools: Sequence[dict[str, Any]], *,
             client: httpx.Client | None = None, sleep: Callable[[float], None] = time.sleep) -> Reply:
    """Ask the model for its next message, retrying passing failures; raises ModelFailed."""
    return _complete(endpoint, request_body(endpoint, messages, tools), client or _shared_client(), sleep)


_shared: httpx.Client | None = None
_sharing = threading.Lock()


def _shared_client() -> httpx.Client:
    """One client for every call (each call sets its own timeout): its pool keeps the provider's connections
    (and their TLS sessions) open between a run's steps, where a new client a call cost ~18 ms on loopback."""
    global _shared
    with _sharing:
        if _shared is None:
            _shared = httpx.Client()
        return _shared


def request_body(endpoint: ModelEndpoint, messages: Sequence[dict[str, Any]],
                 tools: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The chat-completions request; tools and tool_choice only when there are tools (some servers refuse [])."""
    body: dict[str, Any] = {"model": endpoint.model, "messages": list(messages)}
    if tools:
        body["tools"] = list(tools)
        body["tool_choice"] = "auto"
    return body


def _complete(endpoint: ModelEndpoint, body: dict[str, Any], client: httpx.Client,
              sleep: Callable[[float], None]) -> Reply:
    pause = endpoint.backoff_seconds
    attempt = 1
    while True:
        outcome = _attempt(endpoint, body, client)
        if isinstance(outcome, Reply):
            return outcome
        if not outcome.retryable or attempt > endpoint.retries:
            tries = f" (after {attempt} attempts)" if attempt > 1 else ""
            raise ModelFailed(f"{outcome.reason}{tries}.")
        wait = pause if outcome.retry_after is None else outcome.retry_after
        log.warning("model call will retry", model=endpoint.model, attempt=attempt, error=outcome.reason,
                    wait_seconds=wait)
        sleep(wait)
        pause *= 2
        attempt += 1


def _attempt(endpoint: ModelEndpoint, body: dict[str, Any], client: httpx.Client) -> Reply | _Miss:
    url = f"{endpoint.base_url.rstrip('/')}/chat/completions"
    headers = {"Authorization": f"Bearer {endpoint.api_key}", "Accept": "application/json"}
    try:
        response = client.post(url, json=body, headers=headers, timeout=httpx.Timeout(endpoint.timeout_seconds))
    except httpx.TimeoutException as exc:
        return _Miss(f"The model endpoint timed out after {endpoint.timeout_seconds:g} s ({type(exc).__name__})",
                     retryable=True)
    except RETRYABLE_ERRORS as exc:
        return _Miss(f"The model endpoint could not be reached ({type(exc).__name__})", retryable=True)
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        return _Miss(f"The model endpoint could not be called ({type(exc).__name__})", retryable=False)
    status = response.status_code
    if not 200 <= status < 300:
        said = _provider_message(response, endpoint.api_key)
        reason = f"The model endpoint answered HTTP {status}" + (f": {said}" if said else "")
        retryable = status in RETRYABLE_STATUSES or 500 <= status <= 599
        retry_after = _retry_after(response.headers.get("Retry-After")) if retryable else None
        return _Miss(reason, retryable=retryable, retry_after=retry_after)
    try:
        answer = response.json()
    except ValueError:  # bad JSON, or bytes that are not text
        return _Miss("The model endpoint's answer is not JSON", retryable=False)
    try:
        return parse_reply(answer)
    except ValueError as exc:
        return _Miss(f"The model endpoint's answer {exc}", retryable=False)


def parse_reply(answer: object) -> Reply:
    """The Reply in a chat-completions answer; ValueError saying what is out of shape."""
    if not isinstance(answer, dict):
        raise ValueError("is not a JSON object")
    choices = answer.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise ValueError("has no choices")
    message = choices[0].get("message")
    if not isinstance(message, dict):
        raise ValueError("has no message in its first choice")
    usage = answer.get("usage")
    if not isinstance(usage, dict):
        raise ValueError("has no usage")
    input_tokens, output_tokens = usage.get("prompt_tokens"), usage.get("completion_tokens")
    if not _is_count(input_tokens) or not _is_count(output_tokens):
        raise ValueError("has no token counts in its usage")
    finish_reason = choices[0].get("finish_reason")
    return Reply(content=_content(message.get("content")), tool_calls=_tool_calls(message.get("tool_calls")),
                 input_tokens=input_tokens, output_tokens=output_tokens,
                 finish_reason=finish_reason if isinstance(finish_reason, str) else "unknown")


def _is_count(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _content(content: object) -> str | None:
    if content is None or isinstance(content, str):
        return content
    # some servers answer with content parts, as requests may send them
    if isinstance(content, list) and all(isinstance(part, dict) for part in content):
        return "".join(str(part.get("text", "")) for part in content if part.get("type") == "text")
    raise ValueError("has a message content that is neither text nor null")


def _tool_calls(calls: object) -> tuple[ToolCall, ...]:
    if calls is None:
        return ()
    if not isinstance(calls, list):
        raise ValueError("has tool_calls that are not a list")
    parsed = []
    for call in calls:
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(call, dict) or not isinstance(function, dict):
            raise ValueError("has a tool call without a function")
        call_id, name, arguments = call.get("id"), function.get("name"), function.get("arguments")
        if isinstance(arguments, dict):  # a few servers send the object itself rather than its JSON text
            arguments = json.dumps(arguments)
        if not isinstance(call_id, str) or not isinstance(name, str) or not name or not isinstance(arguments, str):
            raise ValueError("has a tool call without an id, a function name or arguments")
        parsed.append(ToolCall(id=call_id, name=name, arguments=arguments))
    return tuple(parsed)


def _provider_message(response: httpx.Response, api_key: str) -> str:
    # OpenAI's shape is {"error": {"message": ...}}; others say {"error": "..."}, {"message": ...} or {"detail": ...}
    try:
        body = response.json()
    except ValueError:
        return ""
    said: object = None
    if isinstance(body, dict):
        error = body.get("error")
        said = error.get("message") if isinstance(error, dict) else error
        said = said or body.get("message") or body.get("detail")
    if not isinstance(said, str):
        return ""
    if api_key:  # providers may quote the key they refused
        said = said.replace(api_key, "***")
    said = " ".join(said.split()).rstrip(".")
    if len(said) > MAX_PROVIDER_MESSAGE_CHARS:
        said = said[:MAX_PROVIDER_MESSAGE_CHARS - 1] + "…"
    return said


def _retry_after(header: str | None) -> float | None:
    # only the delay-seconds form, which is what model providers send; an HTTP date falls back to the backoff
    if header is None:
        return None
    try:
        seconds = float(header.strip())
    except ValueError:
        return None
    if not math.isfinite(seconds) or seconds < 0:
        return None
    return min(seconds, MAX_RETRY_AFTER_SECONDS)
