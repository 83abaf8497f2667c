"""The agent from Telegram: the operator's bot, whose chats, once linked to a server, talk to that server's agent.

A customer sends /start to the bot and gets the chat's link id back: the chat's id with a tag the bot signs it
with (an HMAC under the installation's secret), so that only someone who read the bot's reply in that chat can
link it (a bare chat id is no secret, and would let anyone route another person's chat to their own server).
Linking it to a server (POST /api/instances/{id}/agent/telegram) lets the chat talk to the server's agent as
the user who linked it,
continuing one conversation (/new begins another). A round on a schedule (CLOUDLET_TELEGRAM_POLL_SCHEDULE, see
agent/workflows.py) reads the bot's new messages through the Bot API (getUpdates, short polling) and answers each
one (sendMessage): a linked chat's message runs the agent as a chat request does (agent.service's begin and run,
read-only, with the same metering and limits: a change waits for the customer's approval in the API); a chat
that is not linked gets help and nothing runs; any refusal (no credit, a server that is not running or is
suspended, no model) is a short answer, never the end of the round.

Each update is taken once. The bot's cursor (the next update id, kept in the database so that a restart reads
on from there) moves past an update in a compare-and-set before the update is handled, so rounds that overlap
(a long run, a second worker) never handle one twice, and a round that dies in the middle of an update loses
that message's answer rather than running it twice. Telegram's 429 pauses the rounds for its retry_after: the
round ends there, and the updates it did not take wait for a later one; nothing loops on it.

The bot's token is part of every Bot API URL: it never reaches an error, and kit/logging hides it in log lines.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import httpx
import structlog
from sqlalchemy.orm import Session

from cloudlet.agent import repository
from cloudlet.agent import service as agent
from cloudlet.agent.models import Approval, Role, TelegramLink
from cloudlet.agent.schemas import MESSAGE_CHARS, ChatRequest, MessageRead, TelegramLinkCreate, TelegramLinkRead
from cloudlet.config import Settings, reveal
from cloudlet.instances import guest_access
from cloudlet.kit import clock
from cloudlet.kit.db import Database
from cloudlet.kit.errors import CloudletError, Conflict, Invalid, NotFound, PaymentRequired, Unavailable
from cloudlet.nodes import service as nodes
from cloudlet.projects import service as projects
from cloudlet.projects.schemas import Actor
from cloudlet.webhooks import targets

log = structlog.get_logger(__name__)

MESSAGE_LIMIT = 4096  # Telegram's cap on a message's text, in UTF-16 code units
UPDATES_PER_ROUND = 100  # getUpdates' own maximum
CUT_MARK = "\n[... cut]"
MAX_DESCRIPTION_CHARS = 300
LINK_TAG_CHARS = 12  # base32 characters of the link id's tag: 60 bits
LINK_HOW = 'POST /api/instances/{{id}}/agent/telegram with {{"telegram_chat_id": "{chat_id}"}} (scope agent:write)'
START = ("This chat's link id is {chat_id}.\nTo talk to a server's AI agent here, link this chat to the server: "
         + LINK_HOW + ". Then ask here what you want to know about the server; /new begins a new conversation.")
LINKED = "\nIt is linked to server {server} now: its messages go to that server's agent."
NOT_LINKED = "This chat is not linked to a server. Send /start to learn how to link it."
TEXT_ONLY = "I read text messages only."
NEW_CONVERSATION = "Your next message begins a new conversation."
GONE = "The linked server is gone, or you are no longer a member of its project: link this chat again."
FAILED = "Something went wrong while handling your message; please try again later."
APPROVAL = ("A change waits for your approval: {why}\nApprove or deny it in the API: POST "
            "/api/instances/{server}/agent/conversations/{conversation}/approve with "
            '{{"tool_call_id": "{call}"}}.')
NO_ANSWER = "(The agent gave no answer.)"


class BotApiError(Exception):
    """The Bot API refused a call or could not be reached; description says why (never the token)."""

    def __init__(self, description: str, *, error_code: int | None = None, retry_after: float | None = None) -> None:
        super().__init__(description)
        self.description = description
        self.error_code = error_code
        self.retry_after = retry_after  # a 429's parameters.retry_after, in seconds


@dataclass(frozen=True)
class BotApi:
    """The Telegram Bot API of one bot: where it is, the bot's token, and how long a call may take."""

    base_url: str  # https://api.telegram.org, without a trailing slash
    token: str = field(repr=False)
    timeout_seconds: float = 10.0

    @property
    def bot_id(self) -> str:
        """The bot's id: the token's part before the colon (what the cursor is kept under)."""
        return self.token.split(":", 1)[0][:32]

    def client(self) -> httpx.Client:
        """An HTTP client with the calls' deadlines (connect, write, read and pool)."""
        return httpx.Client(timeout=httpx.Timeout(self.timeout_seconds))

    def call(self, client: httpx.Client, method: str, parameters: dict[str, Any]) -> Any:
        """Call a Bot API method; its result, or BotApiError with Telegram's description and retry_after."""
        try:
            response = client.post(f"{self.base_url}/bot{self.token}/{method}", json=parameters)
        except httpx.HTTPError as failed:  # its text may hold the URL, and with it the token: only its kind
            raise BotApiError(f"the Bot API could not be reached ({type(failed).__name__})") from None
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise BotApiError(f"HTTP {response.status_code} without a Bot API answer", error_code=response.status_code)
        if body.get("ok") is True:
            return body.get("result")
        code = body.get("error_code")
        parameters_back = body.get("parameters")
        retry_after = parameters_back.get("retry_after") if isinstance(parameters_back, dict) else None
        raise BotApiError(str(body.get("description") or f"HTTP {response.status_code}")[:MAX_DESCRIPTION_CHARS],
                          error_code=code if isinstance(code, int) else response.status_code,
                          retry_after=float(retry_after) if isinstance(retry_after, int | float) else None)

    def get_updates(self, client: httpx.Client, offset: int) -> list[dict[str, Any]]:
        """The bot's messages from update `offset` on (which confirms the earlier ones), without waiting."""
        found = self.call(client, "getUpdates", {"offset": offset, "limit": UPDATES_PER_ROUND, "timeout": 0,
                                                 "allowed_updates": ["message"]})
        if not isinstance(found, list):
            raise BotApiError("getUpdates answered no list of updates")
        return [update for update in found if isinstance(update, dict)]

    def send_message(self, client: httpx.Client, chat_id: str, text: str) -> None:
        """Send a plain text message to a chat, cut to Telegram's cap."""
        self.call(client, "sendMessage", {"chat_id": int(chat_id), "text": cut(text)})


def _utf16_units(char: str) -> int:
    return 2 if ord(char) > 0xFFFF else 1


def cut(text: str, limit: int = MESSAGE_LIMIT) -> str:
    """The text as Telegram takes it: never empty, at most `limit` UTF-16 code units (Telegram's measure), with a
    mark where it was cut."""
    text = text.strip() or NO_ANSWER
    if sum(map(_utf16_units, text)) <= limit:
        return text
    budget, used, kept = limit - len(CUT_MARK), 0, []
    for char in text:
        used += _utf16_units(char)
        if used > budget:
            break
        kept.append(char)
    return "".join(kept).rstrip() + CUT_MARK


def bot(settings: Settings) -> BotApi | None:
    """The configured bot, or None without a token; Invalid when the Bot API URL is one webhooks may not reach
    (loopback and private addresses only when the operator allows them)."""
    token = reveal(settings.telegram_bot_token)
    if not token:
        return None
    checked = targets.check_url(settings.telegram_api_url, allow_private=settings.webhook_allow_private)
    return BotApi(str(checked).rstrip("/"), token, settings.telegram_timeout_seconds)


# --- links ---------------------------------------------------------------------------------------------------


def link_id(settings: Settings, chat_id: str) -> str:
    """The chat's id with the bot's tag, as /start gives it to the chat."""
    tag = hmac.new(settings.jwt_secret.encode(), f"cloudlet-telegram-link:{chat_id}".encode(), hashlib.sha256)
    return f"{chat_id}-{base64.b32encode(tag.digest()).decode().lower()[:LINK_TAG_CHARS]}"


def _chat_of(settings: Settings, given: str) -> str:
    """The chat id in a link id the bot gave; 422 for one it did not."""
    chat_id = given.rsplit("-", 1)[0]
    if not hmac.compare_digest(link_id(settings, chat_id), given):
        raise Invalid("telegram_chat_id", "This is not a link id the bot gave: send /start to the bot in the chat "
                      "to link and use the id of its reply.", code="TELEGRAM_LINK_ID_INVALID")
    return chat_id


def linked_chat(session: Session, settings: Settings, actor: Actor, ident: str) -> TelegramLinkRead:
    """The chat linked to the actor's server, or null (404 for another project's server)."""
    server = guest_access.server_of(session, actor, ident)
    link = repository.telegram_link(session, server.uuid)
    return TelegramLinkRead(telegram_chat_id=link_id(settings, link.chat_id) if link is not None else None)


def link_chat(session: Session, settings: Settings, actor: Actor, ident: str,
              data: TelegramLinkCreate) -> TelegramLinkRead:
    """Let a chat talk to the server's agent as the actor; a chat linked to another server moves here (503 when
    the operator has set up no bot)."""
    server = guest_access.server_of(session, actor, ident)
    if settings.telegram_bot_token is None:
        raise Unavailable("No Telegram bot is set up: the operator sets CLOUDLET_TELEGRAM_BOT_TOKEN.",
                          code="TELEGRAM_NOT_CONFIGURED")
    chat_id = _chat_of(settings, data.telegram_chat_id)
    elsewhere = repository.telegram_link_of_chat(session, chat_id, lock=True)
    if elsewhere is not None and elsewhere.instance_uuid != server.uuid:
        repository.remove(session, elsewhere)  # a chat talks to one server
    link = repository.telegram_link(session, server.uuid, lock=True)
    if link is None:
        link = TelegramLink(project_id=server.project_id, instance_uuid=server.uuid, chat_id=chat_id,
                            user_id=actor.user_id, created_at=clock.now())
    elif link.chat_id != chat_id:  # another chat: its conversation is not this one's
        link.chat_id, link.conversation_id, link.created_at = chat_id, None, clock.now()
    link.user_id = actor.user_id
    if not repository.save_link(session, link):
        raise Conflict("The chat or the server was linked by another request at the same time; try again.",
                       code="TELEGRAM_LINK_CONFLICT")
    return TelegramLinkRead(telegram_chat_id=link_id(settings, link.chat_id))


def unlink_chat(session: Session, actor: Actor, ident: str) -> None:
    """Unlink the server's chat, if it has one (its conversation stays)."""
    server = guest_access.server_of(session, actor, ident)
    link = repository.telegram_link(session, server.uuid, lock=True)
    if link is not None:
        repository.remove(session, link)


# --- the poll round ------------------------------------------------------------------------------------------

_paused_until: dict[str, datetime] = {}  # bot id -> no Bot API call before this (Telegram's 429 asked so)
_round = threading.Lock()  # one round at a time in a process: a chat's messages run in order


def poll(db: Database, settings: Settings, drivers: nodes.Drivers) -> int:
    """One round: read the bot's new messages and answer each; how many updates it took. Does nothing without a
    bot token, while Telegram asked for a pause, or while another round runs in this process."""
    if settings.telegram_bot_token is None:
        return 0
    try:
        api = bot(settings)
    except CloudletError as refused:
        log.warning("telegram bot api url refused", error=refused.message)
        return 0
    if api is None or not _round.acquire(blocking=False):
        return 0
    try:
        paused = _paused_until.get(api.bot_id)
        if paused is not None and clock.now() < paused:
            return 0
        with api.client() as client:
            return _round_of(db, settings, drivers, api, client)
    finally:
        _round.release()


def _round_of(db: Database, settings: Settings, drivers: nodes.Drivers, api: BotApi, client: httpx.Client) -> int:
    with db.session(write=False) as session:
        offset = repository.next_update_id(session, api.bot_id)
    try:
        updates = api.get_updates(client, offset)
    except BotApiError as failed:
        _refused(api, "getUpdates", failed)
        return 0
    taken = 0
    for update in updates:
        update_id = update.get("update_id")
        if not isinstance(update_id, int) or isinstance(update_id, bool):
            continue
        with db.session() as session:
            if not repository.take_update(session, api.bot_id, update_id):
                continue  # another round took it
        taken += 1
        answer = _answer_of(db, settings, drivers, update_id, update.get("message"))
        if answer is None:
            continue
        try:
            api.send_message(client, *answer)
        except BotApiError as failed:
            _refused(api, "sendMessage", failed)
            if failed.retry_after is not None or failed.error_code is None:
                break  # paused, or Telegram out of reach: the rest waits for a later round, not run unanswered
    return taken


def _refused(api: BotApi, method: str, failed: BotApiError) -> None:
    """Log a refused call; Telegram's 429 pauses the rounds for as long as it asked."""
    if failed.retry_after is not None:
        _paused_until[api.bot_id] = clock.now() + timedelta(seconds=max(failed.retry_after, 0.0))
    log.warning("telegram bot api call failed", method=method, error_code=failed.error_code,
                description=failed.description, retry_after=failed.retry_after)


def _answer_of(db: Database, settings: Settings, drivers: nodes.Drivers, update_id: int,
               message: object) -> tuple[str, str] | None:
    """The chat and the text to answer a message with; None for an update that is no message to answer."""
    if not isinstance(message, dict):
        return None
    chat = message.get("chat")
    sender = message.get("from")
    chat_key = chat.get("id") if isinstance(chat, dict) else None
    if not isinstance(chat_key, int) or isinstance(chat_key, bool) or (isinstance(sender, dict)
                                                                      and sender.get("is_bot") is True):
        return None
    chat_id = str(chat_key)
    try:
        return chat_id, _answer(db, settings, drivers, chat_id, message.get("text"))
    except Exception:  # one message's failure is its own answer; the round goes on
        log.exception("telegram message failed", update_id=update_id)
        return chat_id, FAILED


def bot_command(text: str) -> str | None:
    """The bot command a message starts with ("/start", also as "/start@bot payload"), lower-cased, or None."""
    if not text.startswith("/"):
        return None
    return text.split(maxsplit=1)[0].split("@", 1)[0].lower()


def _answer(db: Database, settings: Settings, drivers: nodes.Drivers, chat_id: str, text: object) -> str:
    """What to answer a chat's message: the /start help, the agent's answer, or why nothing ran."""
    if not isinstance(text, str) or not text.strip():
        return TEXT_ONLY
    command = bot_command(text)
    with db.session(write=command == "/new") as session:
        link = repository.telegram_link_of_chat(session, chat_id, lock=command == "/new")
        if command == "/start":
            linked = LINKED.format(server=link.instance_uuid) if link else ""
            return START.format(chat_id=link_id(settings, chat_id)) + linked
        if link is None:
            return NOT_LINKED
        if command == "/new":
            link.conversation_id = None
            return NEW_CONVERSATION
    return _run(db, settings, drivers, chat_id, text)


def _run(db: Database, settings: Settings, drivers: nodes.Drivers, chat_id: str, text: str) -> str:
    """Run the agent for the chat's linked server as the user who linked it; its answer, or why it stopped."""
    try:
        with db.session() as session:
            link = repository.telegram_link_of_chat(session, chat_id, lock=True)
            if link is None:  # unlinked in the meantime
                return NOT_LINKED
            actor = projects.acting_member(session, link.user_id, link.project_id)
            begun = agent.begin(session, settings, drivers, actor, link.instance_uuid,
                                ChatRequest(message=text[:MESSAGE_CHARS], conversation_id=link.conversation_id))
            link.conversation_id = begun.conversation_id
            server = link.instance_uuid
    except NotFound:
        return GONE
    except CloudletError as refused:
        return refused.message
    try:
        read = agent.run(db, settings, begun)
        transcript, stopped = read.transcript, read.stopped
    except PaymentRequired:  # the pool ran dry during the run: what ran is kept, and may have an answer
        transcript, stopped = agent.transcript_after(db, begun.conversation_id, 0), agent.OUT_OF_CREDIT
    except CloudletError as refused:
        return refused.message
    return _reply(transcript, stopped, server, begun.conversation_id)


def _reply(transcript: list[MessageRead], stopped: str | None, server: str, conversation_id: int) -> str:
    """The run's last answer to the customer's last message, and why the run stopped, if it stopped short."""
    since = next((i for i in range(len(transcript) - 1, -1, -1) if transcript[i].role is Role.USER), -1)
    ran = transcript[since + 1:]
    said = next((m.content for m in reversed(ran) if m.role is Role.ASSISTANT and m.content.strip()), "")
    if stopped == agent.APPROVAL_NEEDED:
        waiting = next((m for m in reversed(ran) if m.approval is Approval.PENDING), None)
        if waiting is not None:
            why = waiting.content.removeprefix("waiting for the customer's approval: ")
            stopped = APPROVAL.format(why=why, server=server, conversation=conversation_id,
                                      call=waiting.tool_call_id)
    parts = [part for part in (said.strip(), stopped) if part]
    return "\n\n".join(parts) or NO_ANSWER
