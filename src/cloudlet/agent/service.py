"""The AI agent: a customer's chat with an LLM operator about one of their servers.

A chat request appends the customer's message to a conversation (a new one, or one of this server's), then runs
the agent loop: the model (agent/model.py) reads the transcript and answers or asks for tool calls, which run
inside the server (agent/tools.py); their results go back to the model, until it answers, the step limit
(agent_max_steps) is reached, the credit pool runs dry, or a call that would change the server waits for the
customer's approval (approve() then runs it, or tells the model no, and the loop goes on). No transaction is
held while the model or a tool works: each step is recorded in its own, with its cost, and the whole cents it
makes due are debited at once (agent/metering.py), so a run that stops at any point leaves a transcript and a
ledger that agree.

Refusals, before anything runs: 404 for another project's server or another server's conversation, 403 for a
suspended server, 409 for one not running (or without a guest agent), 402 with an empty credit pool, 503
without a model configured; during a run, a pool that runs dry stops it with 402 (what ran is kept and paid up
to what the pool held), and a model that fails answers 502 with its reason (the step is recorded, not charged).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from cloudlet.agent import metering, model, repository, tools
from cloudlet.agent.models import AgentConversation, AgentMessage, Approval, Role
from cloudlet.agent.schemas import (
    ApprovalRequest,
    ChatRequest,
    ConversationRead,
    ConversationSummary,
    MessageRead,
    ToolCallRead,
)
from cloudlet.billing import service as billing
from cloudlet.config import Settings, reveal
from cloudlet.instances import guest_access
from cloudlet.instances.guest_access import RunningGuest
from cloudlet.kit import clock
from cloudlet.kit.db import Database
from cloudlet.kit.errors import CloudletError, Conflict, NotFound, PaymentRequired, Unavailable
from cloudlet.nodes import service as nodes
from cloudlet.projects.schemas import Actor
from cloudlet.webhooks import targets

TITLE_CHARS = 200
OUT_OF_CREDIT = "Out of AI credits: top up the agent credit pool."
APPROVAL_NEEDED = ("A tool call would change the server and waits for your approval: POST .../approve with its "
                   "tool_call_id (or allow changes for the request).")
SYSTEM_PROMPT = (
    "You are Cloudlet's operator agent, working inside the customer's server {hostname} (Debian, root) through "
    "tools that run there. Find out with the tools before you answer; say what you ran and what it showed. "
    "A call that would change the server waits for the customer's approval unless they allowed changes for the "
    "request; if they deny it, do not try another way. Be brief.")


class ModelError(CloudletError):
    """The model gave no usable answer (502): the step is recorded in the conversation, and not charged."""

    status = 502
    code = "AGENT_MODEL_FAILED"


# --- reading -----------------------------------------------------------------------------------------------


def _summary_fields(row: AgentConversation) -> dict[str, Any]:
    return {"id": row.id, "instance_id": row.instance_uuid, "title": row.title, "messages": row.messages,
            "input_tokens": row.input_tokens, "output_tokens": row.output_tokens, "tool_calls": row.tool_calls,
            "cost_microcents": row.cost_microcents, "charged_cents": row.charged_cents,
            "created_at": row.created_at, "updated_at": row.updated_at}


def _message_read(row: AgentMessage) -> MessageRead:
    is_tool = row.role is Role.TOOL
    return MessageRead(seq=row.seq, role=row.role, content=row.content,
                       tool_calls=[ToolCallRead(**call) for call in row.tool_calls],
                       tool_call_id=row.tool_call_id or None, tool=row.tool_name if is_tool else None,
                       arguments=row.tool_arguments if is_tool else None, exit_status=row.exit_status,
                       truncated=row.truncated, duration_ms=row.duration_ms, input_tokens=row.input_tokens,
                       output_tokens=row.output_tokens, cost_microcents=row.cost_microcents,
                       error=row.error or None, approval=row.approval or None, created_at=row.created_at)


def _read(session: Session, row: AgentConversation, stopped: str | None = None) -> ConversationRead:
    transcript = [_message_read(message) for message in repository.messages(session, row.id)]
    return ConversationRead(**_summary_fields(row), transcript=transcript, stopped=stopped)


def _server(session: Session, actor: Actor, ident: str) -> tuple[str, int]:
    """The actor's server's uuid and project, whatever its state (404 for another project's)."""
    found = guest_access.server_of(session, actor, ident)
    return found.uuid, found.project_id


def _own(session: Session, uuid: str, project_id: int, conversation_id: int, *,
         lock: bool = False) -> AgentConversation:
    row = repository.conversation(session, conversation_id, lock=lock)
    if row is None or row.instance_uuid != uuid or row.project_id != project_id:
        raise NotFound("conversation", conversation_id, code="CONVERSATION_NOT_FOUND")
    return row


def transcript_after(db: Database, conversation_id: int, seq: int) -> list[MessageRead]:
    """A conversation's messages after seq (what a stream of its run has not sent yet)."""
    with db.session(write=False) as session:
        return [_message_read(message) for message in repository.messages(session, conversation_id)
                if message.seq > seq]


def list_conversations(session: Session, actor: Actor, ident: str) -> list[ConversationSummary]:
    """A server's conversations, newest first."""
    uuid, project_id = _server(session, actor, ident)
    return [ConversationSummary(**_summary_fields(row)) for row in repository.conversations(session, uuid, project_id)]


def get_conversation(session: Session, actor: Actor, ident: str, conversation_id: int) -> ConversationRead:
    """One conversation of the server with its full transcript."""
    uuid, project_id = _server(session, actor, ident)
    return _read(session, _own(session, uuid, project_id, conversation_id))


def delete_conversation(session: Session, actor: Actor, ident: str, conversation_id: int) -> None:
    """Forget a conversation and its transcript (what it cost stays in the ledger)."""
    uuid, project_id = _server(session, actor, ident)
    repository.remove(session, _own(session, uuid, project_id, conversation_id, lock=True))


# --- the loop ----------------------------------------------------------------------------------------------


def endpoint(settings: Settings) -> model.ModelEndpoint:
    """The configured model, or 503 saying what is missing."""
    if not settings.agent_base_url or not settings.agent_model:
        raise Unavailable("The AI agent has no model configured: the operator sets CLOUDLET_AGENT_BASE_URL and "
                          "CLOUDLET_AGENT_MODEL.", code="AGENT_NOT_CONFIGURED")
    try:
        targets.check_url(settings.agent_base_url, allow_private=settings.webhook_allow_private)
    except CloudletError as refused:
        raise Unavailable(f"The AI agent's model URL is not allowed: {refused}", code="AGENT_NOT_CONFIGURED") \
            from None
    return model.ModelEndpoint(base_url=settings.agent_base_url.rstrip("/"),
                               api_key=reveal(settings.agent_api_key) or "", model=settings.agent_model,
                               timeout_seconds=settings.agent_timeout_seconds, retries=settings.agent_retries)


@dataclass(frozen=True)
class ChatRun:
    """A chat request's run, begun: its conversation, the server, the model, and whether changes are allowed."""

    conversation_id: int
    guest: RunningGuest
    reach: model.ModelEndpoint
    allow_changes: bool
    since: int  # the conversation's last message before this run's
    approved: tuple[int, str, str, str] | None = None  # a call approved just now: (message id, tool, arguments, id)
    observe: Callable[[], None] | None = None  # told after each step is committed (a stream of the run)


def begin(session: Session, settings: Settings, drivers: nodes.Drivers, actor: Actor, ident: str,
          data: ChatRequest) -> ChatRun:
    """Check that the agent may run, and append the customer's message, in the request's transaction; run() does
    the rest once it has committed."""
    guest = guest_access.running_guest(session, drivers, actor, ident, refuse_suspended=True)
    if billing.agent_balance(session, guest.project_id) <= 0:
        raise PaymentRequired(OUT_OF_CREDIT)
    reach = endpoint(settings)
    if data.conversation_id is not None:
        row = _own(session, guest.uuid, guest.project_id, data.conversation_id, lock=True)
        if row.messages + 2 > settings.agent_max_messages:
            raise Conflict(_full(settings), code="CONVERSATION_FULL")
    else:
        row = AgentConversation(project_id=guest.project_id, instance_uuid=guest.uuid,
                                title=data.message.strip()[:TITLE_CHARS], created_at=clock.now())
        repository.add(session, row)
    since = row.messages
    _append(session, row, AgentMessage(role=Role.USER, content=data.message))
    return ChatRun(row.id, guest, reach, data.allow_changes, since)


def approve(session: Session, settings: Settings, drivers: nodes.Drivers, actor: Actor, ident: str,
            conversation_id: int, data: ApprovalRequest) -> ChatRun:
    """Approve (or deny) the call a conversation's run stopped on, in the request's transaction; run() then runs
    it, if approved, and goes on with the model."""
    guest = guest_access.running_guest(session, drivers, actor, ident, refuse_suspended=True)
    row = _own(session, guest.uuid, guest.project_id, conversation_id, lock=True)
    waiting = next((message for message in repository.messages(session, row.id)
                    if message.approval is Approval.PENDING and message.tool_call_id == data.tool_call_id), None)
    if waiting is None:
        raise Conflict("No tool call of this conversation waits for approval under that id.",
                       code="NOTHING_TO_APPROVE")
    if billing.agent_balance(session, guest.project_id) <= 0:
        raise PaymentRequired(OUT_OF_CREDIT)
    reach = endpoint(settings)
    row.updated_at = clock.now()
    if not data.approve:
        waiting.approval, waiting.content = Approval.DENIED, "denied: the customer did not approve this call"
        return ChatRun(row.id, guest, reach, data.allow_changes, row.messages)
    waiting.approval = Approval.APPROVED
    return ChatRun(row.id, guest, reach, data.allow_changes, row.messages,
                   (waiting.id, waiting.tool_name, json.dumps(waiting.tool_arguments), waiting.tool_call_id))


def run(db: Database, settings: Settings, chat: ChatRun) -> ConversationRead:
    """Run the agent until it answers or stops, each step in a transaction of its own; the conversation."""
    stopped = None
    if chat.approved is not None:
        message_id, name, arguments, call_id = chat.approved
        if not _tool_step(db, settings, chat, name, arguments, call_id, pending=message_id):
            stopped = OUT_OF_CREDIT
    stopped = stopped or _loop(db, settings, chat)
    with db.session() as session:
        row = _locked(session, chat)
        paid = _charge(session, settings, row, final=True)
        if stopped is None and not paid:
            stopped = OUT_OF_CREDIT
        read = _read(session, row, stopped)
    if stopped == OUT_OF_CREDIT:
        raise PaymentRequired(f"{OUT_OF_CREDIT} The run stopped; conversation {chat.conversation_id} keeps what ran.")
    return read


def _loop(db: Database, settings: Settings, chat: ChatRun) -> str | None:
    """Model steps and tool calls until an answer; why the run stopped short, or None."""
    system = {"role": "system", "content": SYSTEM_PROMPT.format(hostname=chat.guest.hostname)}
    for _ in range(settings.agent_max_steps):
        with db.session(write=False) as session:
            messages = repository.messages(session, chat.conversation_id)
        if len(messages) >= settings.agent_max_messages:
            return _full(settings)
        history = _history(messages)
        try:
            reply = model.complete(chat.reach, [system, *history], tools.DEFINITIONS)
        except model.ModelFailed as failed:
            with _step(db, chat) as (session, row):
                _append(session, row, AgentMessage(role=Role.ASSISTANT, error=failed.reason))
            raise ModelError(f"The model failed: {failed.reason}") from None
        calls = [{"id": call.id, "name": call.name, "arguments": call.arguments} for call in reply.tool_calls]
        cost = metering.model_cost(settings, reply.input_tokens, reply.output_tokens)
        with _step(db, chat) as (session, row):
            row.input_tokens += reply.input_tokens
            row.output_tokens += reply.output_tokens
            _append(session, row, AgentMessage(role=Role.ASSISTANT, content=reply.content or "", tool_calls=calls,
                                               input_tokens=reply.input_tokens, output_tokens=reply.output_tokens,
                                               cost_microcents=cost))
            if not _charge(session, settings, row, final=False):
                return OUT_OF_CREDIT
        if not calls:
            return None
        for call in reply.tool_calls:
            why = None if chat.allow_changes else tools.needs_approval(call.name, call.arguments)
            if why is not None:
                with _step(db, chat) as (session, row):
                    _append(session, row, AgentMessage(
                        role=Role.TOOL, content=f"waiting for the customer's approval: {why}",
                        tool_call_id=call.id[:100], tool_name=call.name[:40], tool_arguments=_arguments(call.arguments),
                        approval=Approval.PENDING))
                return APPROVAL_NEEDED
            if not _tool_step(db, settings, chat, call.name, call.arguments, call.id):
                return OUT_OF_CREDIT
    return f"The run reached its step limit ({settings.agent_max_steps} model calls) before an answer."


def _full(settings: Settings) -> str:
    return f"The conversation is full (it holds at most {settings.agent_max_messages} messages): start a new one."


def _arguments(text: str) -> dict[str, Any]:
    try:
        found = json.loads(text or "{}")
    except ValueError:
        return {"unparsed": text[:2000]}
    return found if isinstance(found, dict) else {"value": found}


def _tool_step(db: Database, settings: Settings, chat: ChatRun, name: str, arguments: str, call_id: str, *,
               pending: int | None = None) -> bool:
    """Run one tool call and record it: as a new message, or in the pending one it waited in; whether the pool
    could pay for it."""
    result = tools.run(chat.guest, settings, name, arguments)
    ran = {"content": result.output, "exit_status": result.exit_status, "truncated": result.truncated,
           "duration_ms": round(result.seconds * 1000), "cost_microcents": metering.tool_cost(settings),
           "error": result.error}
    with _step(db, chat) as (session, row):
        row.tool_calls += 1
        waited = repository.message(session, pending) if pending is not None else None
        if waited is None:
            _append(session, row, AgentMessage(role=Role.TOOL, tool_call_id=call_id[:100], tool_name=name[:40],
                                               tool_arguments=_arguments(arguments), **ran))
        else:
            for field, value in ran.items():
                setattr(waited, field, value)
            row.cost_microcents += waited.cost_microcents
            row.updated_at = clock.now()
            session.flush()
        return _charge(session, settings, row, final=False)


@contextmanager
def _step(db: Database, chat: ChatRun) -> Iterator[tuple[Session, AgentConversation]]:
    """A step's transaction, on the conversation locked; whoever watches the run hears of it once committed."""
    with db.session() as session:
        yield session, _locked(session, chat)
    if chat.observe is not None:
        chat.observe()


def _locked(session: Session, chat: ChatRun) -> AgentConversation:
    row = repository.conversation(session, chat.conversation_id, lock=True)
    if row is None:  # deleted while it ran
        raise NotFound("conversation", chat.conversation_id, code="CONVERSATION_NOT_FOUND")
    return row


def _append(session: Session, row: AgentConversation, message: AgentMessage) -> None:
    row.messages += 1
    row.cost_microcents += message.cost_microcents or 0
    row.updated_at = clock.now()
    message.conversation_id, message.seq, message.created_at = row.id, row.messages, clock.now()
    repository.add(session, message)


def _charge(session: Session, settings: Settings, row: AgentConversation, *, final: bool) -> bool:
    """Debit the whole cents now due (at the end of a request, the fraction too); whether the pool paid them."""
    due = metering.due_cents(row.cost_microcents, row.charged_cents, final=final)
    if due == 0:
        return True
    key = f"agent:{row.id}:{row.messages}" + (":end" if final else "")
    paid = billing.charge_agent(session, settings, row.project_id, due, key=key,
                                description=f"AI agent, conversation {row.id}")
    row.charged_cents += paid
    return paid == due


def _history(messages: list[AgentMessage]) -> list[dict[str, Any]]:
    """The transcript as the model reads it. A failed step is left out; a tool call the run never answered
    (it stopped first) gets an answer saying so, as the protocol wants one for every call."""
    answered = {message.tool_call_id for message in messages if message.role is Role.TOOL}
    found: list[dict[str, Any]] = []
    for message in messages:
        if message.role is Role.USER:
            found.append({"role": "user", "content": message.content})
        elif message.role is Role.TOOL:
            found.append({"role": "tool", "tool_call_id": message.tool_call_id, "content": message.content})
        elif not message.error:
            said: dict[str, Any] = {"role": "assistant", "content": message.content or None}
            if message.tool_calls:
                said["tool_calls"] = [{"id": call["id"], "type": "function",
                                       "function": {"name": call["name"], "arguments": call["arguments"]}}
                                      for call in message.tool_calls]
            found.append(said)
            found.extend({"role": "tool", "tool_call_id": call["id"], "content": "not run: the run stopped first"}
                         for call in message.tool_calls if call["id"] not in answered)
    return found
