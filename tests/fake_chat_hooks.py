"""Fake Slack and Discord incoming webhooks for tests: each service's real protocol on 127.0.0.1.

    with FakeSlack() as slack:
        slack.throttle(retry_after=1)       # the next message is refused with 429 and Retry-After: 1
        ... the code under test POSTs to slack.url ...
        assert slack.messages[-1]["text"]

Slack (https://api.slack.com/messaging/webhooks): POST a JSON object with "text" (and optionally "blocks") to
/services/T.../B.../<token>; 200 with the plain-text body "ok"; 400 "invalid_payload" for a body that is no JSON
object, 400 "no_text" for one without text or blocks; 404 "no_service" for a webhook that does not exist (or was
removed); 429 "rate_limited" with Retry-After (seconds) when throttled.
Discord (https://discord.com/developers/docs/resources/webhook): POST a JSON object with "content" and/or
"embeds" (at most 10; content at most 2000 characters) to /api/webhooks/<id>/<token>; 204 without a body; 400
{"message", "code": 50006} for an empty message; 404 {"message": "Unknown Webhook", "code": 10015}; 429 with
JSON {"message", "retry_after" (seconds, with a fraction), "global"} and a Retry-After header when throttled.
"""

from __future__ import annotations

import json
import math
import secrets
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from types import TracebackType
from typing import Any, Self

from tests.local_http import LocalHttpServer


@dataclass(frozen=True)
class Posted:
    """One request the hook got: its path, headers (lower-cased names) and body."""

    path: str
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True)
class Answer:
    """What the hook answers one request with."""

    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


class _Hook:
    """A webhook service on a free loopback port, in a thread; a context manager. Answers the scripted answers
    first (throttle(), fail()), then the service's own."""

    path: str

    def __init__(self) -> None:
        self.posted: list[Posted] = []
        self.messages: list[dict[str, Any]] = []  # the bodies it accepted, in order
        self.removed = False  # the webhook was deleted on the service's side: 404 from now on
        self._script: list[Answer] = []
        self._lock = threading.Lock()
        self._http = LocalHttpServer(self._handler())

    @property
    def url(self) -> str:
        """The webhook's URL, token included."""
        return f"{self._http.url}{self.path}"

    def __enter__(self) -> Self:
        self._http.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self._http.stop()

    def fail(self, status: int = 503, *, times: int = 1) -> None:
        """The next `times` messages are answered with this status (a service having trouble)."""
        with self._lock:
            self._script += [Answer(status, b"service unavailable")] * times

    def throttle(self, retry_after: float = 1.0) -> None:
        """The next message is refused with the service's 429."""
        with self._lock:
            self._script.append(self.rate_limited(retry_after))

    def rate_limited(self, retry_after: float) -> Answer:
        """The service's 429."""
        raise NotImplementedError

    def accept(self, message: dict[str, Any]) -> Answer:
        """Check a message as the service does; its answer (the message is kept when it is a success)."""
        raise NotImplementedError

    def unknown(self) -> Answer:
        """The answer for a webhook that does not exist."""
        raise NotImplementedError

    def invalid(self) -> Answer:
        """The answer for a body that is no JSON object."""
        raise NotImplementedError

    def _answer(self, path: str, body: bytes) -> Answer:
        with self._lock:
            if self._script:
                return self._script.pop(0)
        if path != self.path or self.removed:
            return self.unknown()
        try:
            message = json.loads(body)
        except ValueError:
            return self.invalid()
        if not isinstance(message, dict):
            return self.invalid()
        answer = self.accept(message)
        if 200 <= answer.status < 300:
            with self._lock:
                self.messages.append(message)
        return answer

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with hook._lock:
                    hook.posted.append(Posted(self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                answer = hook._answer(self.path, body)
                self.send_response(answer.status)
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(answer.body)))
                self.end_headers()
                if answer.body:
                    self.wfile.write(answer.body)

            def log_message(self, *_args: Any) -> None:
                pass

        return Handler


class FakeSlack(_Hook):
    """A Slack incoming webhook."""

    def __init__(self) -> None:
        self.path = f"/services/T{secrets.token_hex(4).upper()}/B{secrets.token_hex(4).upper()}/" \
                    f"{secrets.token_urlsafe(18)}"
        super().__init__()

    def rate_limited(self, retry_after: float) -> Answer:
        """Slack's 429: a plain-text body and Retry-After in whole seconds."""
        return Answer(429, b"rate_limited", {"Retry-After": str(math.ceil(retry_after)),
                                             "Content-Type": "text/plain"})

    def accept(self, message: dict[str, Any]) -> Answer:
        """A message needs text or blocks; the answer is 200 "ok"."""
        if not message.get("text") and not message.get("blocks"):
            return Answer(400, b"no_text", {"Content-Type": "text/plain"})
        if "blocks" in message and not isinstance(message["blocks"], list):
            return Answer(400, b"invalid_blocks", {"Content-Type": "text/plain"})
        return Answer(200, b"ok", {"Content-Type": "text/plain"})

    def unknown(self) -> Answer:
        """Slack's answer for a webhook that does not exist."""
        return Answer(404, b"no_service", {"Content-Type": "text/plain"})

    def invalid(self) -> Answer:
        """Slack's answer for a body it cannot read."""
        return Answer(400, b"invalid_payload", {"Content-Type": "text/plain"})


class FakeDiscord(_Hook):
    """A Discord channel webhook."""

    def __init__(self) -> None:
        self.path = f"/api/webhooks/{10**17 + secrets.randbelow(10**17)}/{secrets.token_urlsafe(48)}"
        super().__init__()

    @staticmethod
    def _json(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> Answer:
        return Answer(status, json.dumps(body).encode(), {"Content-Type": "application/json", **(headers or {})})

    def rate_limited(self, retry_after: float) -> Answer:
        """Discord's 429: retry_after in the JSON (with a fraction) and in the Retry-After header (whole seconds)."""
        return self._json(429, {"message": "You are being rate limited.", "retry_after": retry_after,
                                 "global": False}, {"Retry-After": str(math.ceil(retry_after)),
                                                    "X-RateLimit-Scope": "user"})

    def accept(self, message: dict[str, Any]) -> Answer:
        """A message needs content or embeds within Discord's bounds; the answer is 204."""
        content, embeds = message.get("content"), message.get("embeds") or []
        if not content and not embeds:
            return self._json(400, {"message": "Cannot send an empty message", "code": 50006})
        if (isinstance(content, str) and len(content) > 2000) or not isinstance(embeds, list) or len(embeds) > 10:
            return self._json(400, {"message": "Invalid Form Body", "code": 50035})
        return Answer(204)

    def unknown(self) -> Answer:
        """Discord's answer for a webhook that does not exist."""
        return self._json(404, {"message": "Unknown Webhook", "code": 10015})

    def invalid(self) -> Answer:
        """Discord's answer for a body it cannot read."""
        return self._json(400, {"message": "The request body contains invalid JSON.", "code": 50109})
