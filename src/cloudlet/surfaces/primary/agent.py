"""Primary surface: the AI agent (an LLM operator working inside a customer's server) and its credit pool.

    GET    /api/agent/credits                                      {"balance_cents", "trial_remaining_cents"}
    POST   /api/agent/credits                                      201 the same: {"amount_cents"} moved from the
                                                                   main wallet (extension; wallet:write)
    POST   /api/instances/{id}/agent/chat                          Conversation: {"message", "conversation_id"?,
                                                                   "allow_changes"? (extension, default false)};
                                                                   with Accept: text/event-stream, the steps as
                                                                   Server-Sent Events (extension)
    GET    /api/instances/{id}/agent/conversations                 [ConversationSummary], newest first
    GET    /api/instances/{id}/agent/conversations/{convId}        Conversation, with its full transcript
    DELETE /api/instances/{id}/agent/conversations/{convId}        204
    POST   /api/instances/{id}/agent/conversations/{convId}/approve
                                                                   Conversation: {"tool_call_id", "approve"?
                                                                   (default true), "allow_changes"?} (extension)

Conversation = {"id", "instance_id", "title", "messages", "input_tokens", "output_tokens", "tool_calls",
"cost_microcents", "charged_cents", "created_at", "updated_at", "transcript": [{"seq", "role" (user, assistant,
tool), "content", "tool_calls" (an assistant's), "tool", "arguments", "exit_status", "truncated", "duration_ms",
"input_tokens", "output_tokens", "cost_microcents", "error", "created_at"}], "stopped" (why the run stopped
before an answer)}.

The agent only reads unless the request allows changes: a call that would change the server (an edit, a command
not known to only read) is recorded with "approval": "pending" and the run stops (200, "stopped" says so) until
the customer approves or denies it; then the run goes on.

503 without a model configured; 404 for another project's server or another server's conversation; 403 for a
suspended server; 409 for one not running; 402 when the credit pool is empty before or during a run (what ran
is kept); 502 when the model fails (recorded, not charged). Scopes: agent:read to read, agent:write to chat.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Annotated

from fastapi import APIRouter, Header, Path, Response
from fastapi.responses import JSONResponse, StreamingResponse

from cloudlet.agent import service as agent
from cloudlet.agent.schemas import ApprovalRequest, ChatRequest, ConversationRead, ConversationSummary
from cloudlet.auth.caller import Caller
from cloudlet.billing import service as billing
from cloudlet.billing.schemas import AgentCreditsRead, AgentFunding
from cloudlet.kit.errors import CloudletError
from cloudlet.surfaces.deps import AppRuntime, AppSettings, DbSession, Runtime, requires
from cloudlet.surfaces.errors import problem_of
from cloudlet.surfaces.idempotency import IdempotencyGuard
from cloudlet.surfaces.params import PathId
from cloudlet.surfaces.primary.errors import render
from cloudlet.surfaces.settled import SettledAnswer
from cloudlet.tokens.abilities import Ability

router = APIRouter(prefix="/api", tags=["primary"])

Reader = Annotated[Caller, requires(Ability.AGENT_READ)]
Writer = Annotated[Caller, requires(Ability.AGENT_WRITE)]
InstanceId = Annotated[str, Path(max_length=64, description="Instance UUID.")]
KEEPALIVE_SECONDS = 15.0  # a comment line on a stream this long without a step


@router.get("/agent/credits", response_model=AgentCreditsRead,
            summary="AI agent credits in cents, trial credit included")
def credits(caller: Reader, db: DbSession, settings: AppSettings) -> AgentCreditsRead:
    """The pool's balance and how much of it is trial credit still unspent."""
    return billing.agent_credits(db, settings, caller)


@router.post("/agent/credits", status_code=201, response_model=AgentCreditsRead,
             summary="Fund the AI agent credit pool from the wallet (extension; honours Idempotency-Key)")
def fund(body: AgentFunding, caller: Annotated[Caller, requires(Ability.WALLET_WRITE)], db: DbSession,
         settings: AppSettings, idem: IdempotencyGuard) -> Response:
    """Move money from the project's main wallet into its agent credit pool (402 if the wallet is short)."""
    return idem.run(body, lambda: billing.fund_agent(db, settings, caller, body, key=idem.operation_key),
                    status_code=201)


@router.post("/instances/{instance_id}/agent/chat", response_model=ConversationRead, summary="Chat with the agent")
def chat(instance_id: InstanceId, body: ChatRequest, caller: Writer, db: DbSession, runtime: AppRuntime,
         accept: Annotated[str, Header()] = "") -> Response:
    """Start a conversation or append to one; the agent runs tools inside the server until it answers. With
    `Accept: text/event-stream` (extension), the steps come as Server-Sent Events as they happen."""
    begun = agent.begin(db, runtime.settings, runtime.drivers, caller, instance_id, body)
    if "text/event-stream" in accept:
        return StreamingResponse(_stream(runtime, begun), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store"})
    return SettledAnswer(lambda: _ran(lambda: agent.run(runtime.db, runtime.settings, begun)))


@router.post("/instances/{instance_id}/agent/conversations/{conversation_id}/approve",
             response_model=ConversationRead, summary="Approve or deny a waiting tool call (extension)")
def approve(instance_id: InstanceId, conversation_id: PathId, body: ApprovalRequest, caller: Writer, db: DbSession,
            runtime: AppRuntime) -> Response:
    """Run the call the agent stopped on (or tell it no), then let it go on."""
    begun = agent.approve(db, runtime.settings, runtime.drivers, caller, instance_id, conversation_id, body)
    return SettledAnswer(lambda: _ran(lambda: agent.run(runtime.db, runtime.settings, begun)))


def _event(name: str, data: str) -> str:
    return f"event: {name}\ndata: {data}\n\n"


def _stream(runtime: Runtime, begun: agent.ChatRun) -> Iterator[str]:
    """A run as Server-Sent Events: `message` for each message once recorded, then `done` with the conversation,
    or `error` with the refusal in the surface's error format. The run works in a thread of its own and says when
    a step is committed; a comment line keeps a quiet connection open."""
    told: queue.SimpleQueue[ConversationRead | CloudletError | None] = queue.SimpleQueue()

    def work() -> None:
        try:
            told.put(agent.run(runtime.db, runtime.settings, replace(begun, observe=lambda: told.put(None))))
        except CloudletError as failed:
            told.put(failed)

    threading.Thread(target=work, name=f"agent-run-{begun.conversation_id}", daemon=True).start()
    sent = begun.since
    while True:
        try:
            outcome = told.get(timeout=KEEPALIVE_SECONDS)
        except queue.Empty:
            yield ": still working\n\n"
            continue
        for message in agent.transcript_after(runtime.db, begun.conversation_id, sent):
            yield _event("message", message.model_dump_json())
            sent = message.seq
        if isinstance(outcome, ConversationRead):
            yield _event("done", outcome.model_dump_json())
            return
        if outcome is not None:
            yield _event("error", bytes(render(problem_of(outcome)).body).decode())
            return


def _ran(run: Callable[[], ConversationRead]) -> Response:
    """The run's conversation, or its refusal in the surface's error format (it ends after the request's own
    transaction, outside the exception handlers)."""
    try:
        return JSONResponse(run().model_dump(mode="json"))
    except CloudletError as failed:
        return render(problem_of(failed))


@router.get("/instances/{instance_id}/agent/conversations", response_model=list[ConversationSummary],
            summary="List conversations")
def list_conversations(instance_id: InstanceId, caller: Reader, db: DbSession) -> list[ConversationSummary]:
    """The server's conversations, newest first."""
    return agent.list_conversations(db, caller, instance_id)


@router.get("/instances/{instance_id}/agent/conversations/{conversation_id}", response_model=ConversationRead,
            summary="Get a conversation")
def get_conversation(instance_id: InstanceId, conversation_id: PathId, caller: Reader,
                     db: DbSession) -> ConversationRead:
    """Full message and tool call transcript."""
    return agent.get_conversation(db, caller, instance_id, conversation_id)


@router.delete("/instances/{instance_id}/agent/conversations/{conversation_id}", status_code=204,
               summary="Delete a conversation")
def delete_conversation(instance_id: InstanceId, conversation_id: PathId, caller: Writer, db: DbSession) -> Response:
    """Forget the conversation (its cost stays in the ledger)."""
    agent.delete_conversation(db, caller, instance_id, conversation_id)
    return Response(status_code=204)
