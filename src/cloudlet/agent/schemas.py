"""What the AI agent's callers send and get: a chat message, conversations with their full transcripts."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field, field_validator

from cloudlet.agent.models import Approval, Role

MESSAGE_CHARS = 8000


class ChatRequest(BaseModel):
    """A message to the agent about a server: a new conversation, or the next message of one."""

    message: str = Field(max_length=MESSAGE_CHARS, description="User prompt.")
    conversation_id: int | None = Field(None, ge=1, le=2**31 - 1,
                                        description="Optional. Continue an existing conversation.")
    allow_changes: bool = Field(False, description="Extension: let the agent change the server in this request "
                                "(edit files, run commands that write). Read-only otherwise.")

    @field_validator("message")
    @classmethod
    def _said_something(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("The message is empty.")
        return value


class ApprovalRequest(BaseModel):
    """The customer's answer to a tool call waiting for approval (extension)."""

    tool_call_id: str = Field(min_length=1, max_length=100, description="The waiting call's id.")
    approve: bool = Field(True, description="Run it (true) or tell the agent it may not (false).")
    allow_changes: bool = Field(False, description="Let the agent change the server for the rest of this run.")


class ToolCallRead(BaseModel):
    """A tool call the model asked for."""

    id: str
    name: str
    arguments: str = Field(description="The arguments as the model wrote them (JSON).")


class MessageRead(BaseModel):
    """One message: the customer's, the agent's (with the tool calls it made) or a tool's transcript."""

    seq: int
    role: Role
    content: str = Field(description="The text; for a tool, its output (cut with a marker past the cap).")
    tool_calls: list[ToolCallRead] = []
    tool_call_id: str | None = None
    tool: str | None = Field(None, description="A tool message's tool: shell, read_file, edit_file or tail_log.")
    arguments: dict[str, Any] | None = Field(None, description="A tool message's arguments (the command, path...).")
    exit_status: int | None = Field(None, description="A shell-like tool's exit status; null when it timed out.")
    truncated: bool = False
    duration_ms: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_microcents: int = Field(0, description="What this step cost, in millionths of a cent.")
    error: str | None = None
    approval: Approval | None = Field(None, description="A call that would change the server: pending until the "
                                      "customer approves or denies it, then approved or denied.")
    created_at: datetime


class ConversationSummary(BaseModel):
    """A conversation as listed."""

    id: int
    instance_id: str = Field(description="The server's UUID.")
    title: str
    messages: int
    input_tokens: int
    output_tokens: int
    tool_calls: int
    cost_microcents: int = Field(description="What the conversation's usage cost, exactly.")
    charged_cents: int = Field(description="What the credit pool paid of it (whole cents).")
    created_at: datetime
    updated_at: datetime


class ConversationRead(ConversationSummary):
    """A conversation with its full transcript."""

    transcript: list[MessageRead]
    stopped: str | None = Field(None, description="Why the last run stopped before an answer, if it did.")


class TelegramLinkCreate(BaseModel):
    """The Telegram chat a server's agent should talk to."""

    telegram_chat_id: str = Field(min_length=1, max_length=30, pattern=r"^-?[1-9][0-9]{0,15}-[a-z2-7]{12}$",
                                  description="From the /start reply: the chat's id (an integer; a group's is "
                                  "negative) with the tag the bot signed it with, which only the chat saw.",
                                  examples=["123456789-k5rt2vq7m3xa"])


class TelegramLinkRead(BaseModel):
    """The Telegram chat linked to a server's agent, if any."""

    telegram_chat_id: str | None = Field(description="Linked Telegram chat ID, or null.")
