"""The AI agent's conversations: a server's chats with the agent, each a numbered list of messages.

A message is the customer's (`user`), the model's (`assistant`, with the tool calls it asked for) or a tool's
(`tool`: what ran inside the server, its exit status, output and duration). A conversation keeps what its model
calls and tool calls cost, exactly, in micro-cents (millionths of a cent), and how many whole cents of it were
debited from the project's agent credit pool: the ledger holds the debits, each once (agent/metering.py).

A server's agent is also reached from Telegram (agent/telegram.py): a link ties one chat to one server, and the
bot's cursor keeps where its reading of Telegram's updates stands, so that a restart reads on from there.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from cloudlet.kit import clock
from cloudlet.kit.db import Base, UTCDateTime, enum_column


class Role(StrEnum):
    """Who wrote a message."""

    USER = "user"
    ASSISTANT = "assistant"
    TOOL = "tool"


class Approval(StrEnum):
    """Where a tool call that would change the server stands, in a request that did not allow changes."""

    NONE = ""  # it needed none
    PENDING = "pending"  # waiting for the customer
    APPROVED = "approved"
    DENIED = "denied"


class AgentConversation(Base):
    """One chat between a customer and the agent about one server."""

    __tablename__ = "agent_conversations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    instance_uuid: Mapped[str] = mapped_column(String(36), index=True)
    title: Mapped[str] = mapped_column(String(200))  # the first message, cut
    messages: Mapped[int] = mapped_column(Integer, default=0)  # the last message's seq
    input_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    output_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    tool_calls: Mapped[int] = mapped_column(Integer, default=0)
    cost_microcents: Mapped[int] = mapped_column(BigInteger, default=0)  # what its usage cost, exactly
    charged_cents: Mapped[int] = mapped_column(BigInteger, default=0)  # what the credit pool paid of it
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now, onupdate=clock.now)


class AgentMessage(Base):
    """One message of a conversation; a tool's carries its transcript."""

    __tablename__ = "agent_messages"
    __table_args__ = (UniqueConstraint("conversation_id", "seq"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("agent_conversations.id", ondelete="CASCADE"),
                                                 index=True)
    seq: Mapped[int] = mapped_column(Integer)
    role: Mapped[Role] = mapped_column(enum_column(Role))
    content: Mapped[str] = mapped_column(Text, default="")
    # an assistant's: the tool calls it asked for [{"id", "name", "arguments"}]; a tool's: the call it answers
    tool_calls: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    tool_call_id: Mapped[str] = mapped_column(String(100), default="")
    tool_name: Mapped[str] = mapped_column(String(40), default="")
    tool_arguments: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    exit_status: Mapped[int | None] = mapped_column(Integer)
    truncated: Mapped[bool] = mapped_column(Boolean, default=False)
    duration_ms: Mapped[int] = mapped_column(Integer, default=0)
    input_tokens: Mapped[int] = mapped_column(Integer, default=0)
    output_tokens: Mapped[int] = mapped_column(Integer, default=0)
    cost_microcents: Mapped[int] = mapped_column(BigInteger, default=0)
    error: Mapped[str] = mapped_column(Text, default="")  # why this step failed (the model, a tool, the credit)
    approval: Mapped[Approval] = mapped_column(enum_column(Approval), default=Approval.NONE)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)


class TelegramLink(Base):
    """A Telegram chat that talks to a server's agent, as the user who linked it.

    A server has one chat, and a chat talks to one server: linking it to another moves it. Its messages continue
    one conversation, until the chat asks for a new one (or the conversation is deleted).
    """

    __tablename__ = "agent_telegram_links"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    instance_uuid: Mapped[str] = mapped_column(String(36), unique=True)
    chat_id: Mapped[str] = mapped_column(String(32), unique=True)  # Telegram's, as a string (it may be negative)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)  # acts as them
    conversation_id: Mapped[int | None] = mapped_column(
        ForeignKey("agent_conversations.id", ondelete="SET NULL"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)


class TelegramCursor(Base):
    """Where a bot's reading of Telegram's updates stands: the first update id it has not taken yet."""

    __tablename__ = "agent_telegram_cursors"

    bot_id: Mapped[str] = mapped_column(String(32), primary_key=True)  # the token's part before ":"
    next_update_id: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now, onupdate=clock.now)
