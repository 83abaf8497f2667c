"""A fake model server for tests: the OpenAI chat-completions protocol on loopback, answering from a script.

    with FakeModel() as fake:
        fake.script = [Call("list_instances", {"project": 3}), Say("You have one instance.")]
        complete(ModelEndpoint(fake.base_url, fake.key, "fake-model"), messages, tools)
        assert fake.requests[0]["tools"] == tools

It speaks the real wire format (bearer key, OpenAI-shaped errors, Retry-After, usage) so the client
under test is the one that talks to a real provider. Each request takes the next step of the script.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from types import TracebackType
from typing import Any

from tests.local_http import LocalHttpServer

PATH = "/v1/chat/completions"


@dataclass(frozen=True)
class Say:
    """An assistant message with text; finish_reason "stop"."""

    text: str
    input_tokens: int = 10
    output_tokens: int = 5


@dataclass(frozen=True)
class Call:
    """An assistant message with one tool call; finish_reason "tool_calls"."""

    name: str
    arguments: dict[str, Any]
    input_tokens: int = 10
    output_tokens: int = 5
    call_id: str | None = None  # None: a fresh "call_..." id


@dataclass(frozen=True)
class Fail:
    """An HTTP error with an OpenAI-shaped body, and a Retry-After header when given."""

    status: int
    message: str
    retry_after: float | None = None


@dataclass(frozen=True)
class Hang:
    """Wait this long (or until the server stops), then answer 500: for timeouts."""

    seconds: float


@dataclass(frozen=True)
class Raw:
    """This exact body, for answers out of shape."""

    body: str
    status: int = 200
    content_type: str = "application/json"


Step = Say | Call | Fail | Hang | Raw


def error_body(status: int, message: str) -> dict[str, Any]:
    """The error body OpenAI sends: {"error": {"message", "type", "code"}}."""
    kind, code = {401: ("invalid_request_error", "invalid_api_key"),
                  404: ("invalid_request_error", "unknown_url"),
                  429: ("requests", "rate_limit_exceeded")}.get(
        status, ("server_error", None) if status >= 500 else ("invalid_request_error", None))
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


def completion(model: str, step: Say | Call) -> dict[str, Any]:
    """A chat.completion object for a Say or a Call step."""
    message: dict[str, Any] = {"role": "assistant", "content": None, "refusal": None}
    if isinstance(step, Say):
        message["content"] = step.text
        finish_reason = "stop"
    else:
        message["tool_calls"] = [{"id": step.call_id or f"call_{secrets.token_hex(12)}", "type": "function",
                                  "function": {"name": step.name, "arguments": json.dumps(step.arguments)}}]
        finish_reason = "tool_calls"
    return {"id": f"chatcmpl-{secrets.token_hex(12)}", "object": "chat.completion", "created": int(time.time()),
            "model": model, "choices": [{"index": 0, "message": message, "logprobs": None,
                                         "finish_reason": finish_reason}],
            "usage": {"prompt_tokens": step.input_tokens, "completion_tokens": step.output_tokens,
                      "total_tokens": step.input_tokens + step.output_tokens}}


@dataclass
class FakeModel:
    """The chat-completions endpoint on a free loopback port, in a thread; a context manager."""

    key: str = field(default_factory=lambda: f"sk-fake-{secrets.token_hex(16)}", repr=False)
    script: list[Step] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)  # each accepted request's JSON body

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._stopping = threading.Event()  # ends any Hang early, so stopping never waits on one
        self._http = LocalHttpServer(self._handler())

    @property
    def base_url(self) -> str:
        """The OpenAI-style base URL, ending in /v1."""
        return f"{self._http.url}/v1"

    def __enter__(self) -> FakeModel:
        self._http.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self._stopping.set()
        self._http.stop()  # a Hang returns at once now

    def next_step(self, body: dict[str, Any]) -> Step | None:
        """Record an accepted request and take the script's next step (None when it is exhausted)."""
        with self._lock:
            self.requests.append(body)
            return self.script.pop(0) if self.script else None

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # the stdlib's name
                pass

            def _send(self, status: int, data: bytes, content_type: str = "application/json",
                      headers: dict[str, str] | None = None) -> None:
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", content_type)
                    self.send_header("Content-Length", str(len(data)))
                    for name, value in (headers or {}).items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:  # the client gave up (a timeout test); nobody is left to tell
                    pass

            def _json(self, status: int, body: object, headers: dict[str, str] | None = None) -> None:
                self._send(status, json.dumps(body).encode(), headers=headers)

            def do_GET(self) -> None:  # http.server's hook name
                self._json(404, error_body(404, f"Invalid URL (GET {self.path})"))

            def do_POST(self) -> None:  # http.server's hook name
                length = int(self.headers.get("Content-Length", "0"))
                raw = self.rfile.read(length)
                if self.path != PATH:
                    self._json(404, error_body(404, f"Invalid URL (POST {self.path})"))
                    return
                if self.headers.get("Authorization", "") != f"Bearer {fake.key}":
                    self._json(401, error_body(401, "Incorrect API key provided."))
                    return
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = None
                if not isinstance(body, dict) or not isinstance(body.get("model"), str):
                    self._json(400, error_body(400, "We could not parse the JSON body of your request."))
                    return
                self._answer(fake.next_step(body), body["model"])

            def _answer(self, step: Step | None, model: str) -> None:
                if step is None:
                    self._json(500, error_body(500, "script exhausted"))
                elif isinstance(step, Say | Call):
                    self._json(200, completion(model, step))
                elif isinstance(step, Fail):
                    headers = {} if step.retry_after is None else {"Retry-After": f"{step.retry_after:g}"}
                    self._json(step.status, error_body(step.status, step.message), headers)
                elif isinstance(step, Hang):
                    fake._stopping.wait(step.seconds)
                    self._json(500, error_body(500, f"hung for {step.seconds:g} s"))
                else:
                    self._send(step.status, step.body.encode(), step.content_type)

        return Handler
