"""A fake Telegram Bot API server for tests: the real protocol on loopback, with chats that tests write in.

    with FakeTelegram() as fake:
        fake.send(4242, "/start")           # a customer writes to the bot: a real Update waits for getUpdates
        poll(...)                            # the code under test calls getUpdates and sendMessage
        assert fake.sent[-1].chat_id == 4242

It speaks the wire format of https://core.telegram.org/bots/api: methods under /bot<TOKEN>/<method> by GET or
POST (query string, JSON or form parameters), answers {"ok": true, "result": ...} or {"ok": false, "error_code",
"description", "parameters"?}; a wrong token is 401 Unauthorized. getUpdates honours offset as Telegram does
(calling it with an offset confirms, and forgets, every earlier update; a negative offset keeps the last ones),
limit and allowed_updates; sendMessage refuses an empty text, one longer than 4096 characters (UTF-16 code units)
and a chat the bot has never heard from. throttle() makes the next call answer 429 with a retry_after.
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
from urllib.parse import parse_qsl, urlsplit

from tests.local_http import LocalHttpServer

MESSAGE_LIMIT = 4096
BOT_USER_ID = 777000001


@dataclass(frozen=True)
class Sent:
    """A message the bot sent through sendMessage."""

    chat_id: int
    text: str


@dataclass
class FakeTelegram:
    """The Bot API of one bot on a free loopback port, in a thread; a context manager."""

    token: str = field(default_factory=lambda: f"{secrets.randbelow(10**9) + 10**9}:AA{secrets.token_urlsafe(24)}",
                       repr=False)
    sent: list[Sent] = field(default_factory=list)
    calls: list[str] = field(default_factory=list)  # every method asked with the right token, in order

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._updates: list[dict[str, Any]] = []  # not yet confirmed
        self._next_update_id = 300_000_000 + secrets.randbelow(10**6)  # Telegram's ids do not start at 1
        self._next_message_id = 1
        self._chats: dict[int, dict[str, Any]] = {}
        self._throttle: tuple[int, str | None] | None = None  # (retry_after, the method it waits for, or any)
        self._http = LocalHttpServer(self._handler())

    @property
    def api_url(self) -> str:
        """What CLOUDLET_TELEGRAM_API_URL would be (https://api.telegram.org for the real one)."""
        return self._http.url

    def __enter__(self) -> FakeTelegram:
        self._http.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self._http.stop()

    def send(self, chat_id: int, text: str, *, chat_type: str = "private", first_name: str = "Ada") -> int:
        """A person writes to the bot: an Update with a Message waits for getUpdates; its update_id."""
        chat: dict[str, Any] = {"id": chat_id, "type": chat_type}
        if chat_type == "private":
            chat["first_name"] = first_name
        else:
            chat["title"] = f"{first_name}'s group"
        sender = {"id": abs(chat_id) if chat_type == "private" else 5_000_000 + secrets.randbelow(10**6),
                  "is_bot": False, "first_name": first_name, "language_code": "en"}
        with self._lock:
            self._chats[chat_id] = chat
            update_id = self._next_update_id
            self._next_update_id += 1
            message = {"message_id": self._next_message_id, "from": sender, "chat": chat, "date": int(time.time()),
                       "text": text}
            if text.startswith("/"):
                command = text.split(maxsplit=1)[0]
                message["entities"] = [{"offset": 0, "length": len(command), "type": "bot_command"}]
            self._next_message_id += 1
            self._updates.append({"update_id": update_id, "message": message})
        return update_id

    def pending(self) -> list[int]:
        """The update ids Telegram still keeps (not confirmed by a getUpdates with a higher offset)."""
        with self._lock:
            return [update["update_id"] for update in self._updates]

    def throttle(self, retry_after: int, *, method: str | None = None) -> None:
        """The next call (of that method, e.g. "sendMessage") answers 429 Too Many Requests with
        parameters.retry_after."""
        with self._lock:
            self._throttle = (retry_after, method.lower() if method is not None else None)

    def texts(self, chat_id: int) -> list[str]:
        """What the bot sent to a chat, in order."""
        return [message.text for message in self.sent if message.chat_id == chat_id]

    # --- the methods -----------------------------------------------------------------------------------------

    def get_updates(self, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """getUpdates: confirm what is below offset, then the kept updates of the allowed types, up to limit."""
        offset, limit = _integer(params.get("offset"), 0), _integer(params.get("limit"), 100)
        allowed = params.get("allowed_updates")
        if isinstance(allowed, str):
            allowed = json.loads(allowed)
        if limit < 1 or limit > 100:
            limit = 100
        with self._lock:
            if offset > 0:
                self._updates = [u for u in self._updates if u["update_id"] >= offset]
            elif offset < 0:
                self._updates = self._updates[offset:]
            found = [u for u in self._updates if not allowed or any(kind in u for kind in allowed)]
        return 200, {"ok": True, "result": found[:limit]}

    def send_message(self, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """sendMessage: a plain text message to a chat the bot knows."""
        text = params.get("text")
        try:
            chat_id = int(params.get("chat_id", ""))
        except (TypeError, ValueError):
            return _error(400, "Bad Request: chat not found")
        if not isinstance(text, str) or not text.strip():
            return _error(400, "Bad Request: message text is empty")
        if len(text.encode("utf-16-le")) // 2 > MESSAGE_LIMIT:
            return _error(400, "Bad Request: message is too long")
        with self._lock:
            chat = self._chats.get(chat_id)
            if chat is None:
                return _error(400, "Bad Request: chat not found")
            self.sent.append(Sent(chat_id, text))
            message = {"message_id": self._next_message_id, "date": int(time.time()), "chat": chat, "text": text,
                       "from": {"id": BOT_USER_ID, "is_bot": True, "first_name": "Cloudlet",
                                "username": "cloudlet_test_bot"}}
            self._next_message_id += 1
        return 200, {"ok": True, "result": message}

    def _answer(self, method: str, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        with self._lock:
            self.calls.append(method)
            throttled = self._throttle
            if throttled is not None and throttled[1] in (None, method):
                self._throttle = None
                return _error(429, f"Too Many Requests: retry after {throttled[0]}", {"retry_after": throttled[0]})
        if method == "getupdates":
            return self.get_updates(params)
        if method == "sendmessage":
            return self.send_message(params)
        return _error(404, "Not Found")

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # the stdlib's name
                pass

            def _json(self, status: int, body: object) -> None:
                data = json.dumps(body).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:
                    pass

            def _serve(self, body: bytes) -> None:
                parts = urlsplit(self.path)
                _, bot, method = [*parts.path.split("/", 2), "", ""][:3]
                if bot != f"bot{fake.token}":
                    self._json(*_error(401, "Unauthorized"))
                    return
                params: dict[str, Any] = dict(parse_qsl(parts.query))
                kind = self.headers.get("Content-Type", "").split(";")[0].strip()
                try:
                    if body and kind == "application/json":
                        params.update(json.loads(body))
                    elif body:
                        params.update(parse_qsl(body.decode()))
                except (ValueError, TypeError):
                    self._json(*_error(400, "Bad Request: can't parse JSON object"))
                    return
                self._json(*fake._answer(method.lower(), params))

            def do_GET(self) -> None:  # http.server's hook name
                self._serve(b"")

            def do_POST(self) -> None:  # http.server's hook name
                self._serve(self.rfile.read(int(self.headers.get("Content-Length", "0"))))

        return Handler


def _integer(value: object, default: int) -> int:
    try:
        return int(value) if value is not None else default  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return default


def _error(status: int, description: str, parameters: dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
    """An error as the Bot API answers it."""
    body: dict[str, Any] = {"ok": False, "error_code": status, "description": description}
    if parameters is not None:
        body["parameters"] = parameters
    return status, body
