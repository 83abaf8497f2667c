"""The agent's tables: conversations and their messages."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from cloudlet.agent.models import AgentConversation, AgentMessage


def add(session: Session, row: AgentConversation | AgentMessage) -> None:
    session.add(row)
    session.flush()


def conversation(session: Session, conversation_id: int, *, lock: bool = False) -> AgentConversation | None:
    query = select(AgentConversation).where(AgentConversation.id == conversation_id)
    return session.scalars(query.with_for_update() if lock else query).first()


def conversations(session: Session, instance_uuid: str, project_id: int) -> list[AgentConversation]:
    """A server's conversations, newest first."""
    return list(session.scalars(select(AgentConversation)
                                .where(AgentConversation.instance_uuid == instance_uuid,
                                       AgentConversation.project_id == project_id)
                                .order_by(AgentConversation.updated_at.desc(), AgentConversation.id.desc())))


def messages(session: Session, conversation_id: int) -> list[AgentMessage]:
    """A conversation's messages in order."""
    return list(session.scalars(select(AgentMessage).where(AgentMessage.conversation_id == conversation_id)
                                .order_by(AgentMessage.seq)))


def message(session: Session, message_id: int) -> AgentMessage | None:
    return session.get(AgentMessage, message_id)


def remove(session: Session, row: AgentConversation) -> None:
    session.delete(row)
    session.flush()
