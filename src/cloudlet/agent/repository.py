"""The agent's tables: conversations and their messages, Telegram links and the bot's cursor."""

from __future__ import annotations

from sqlalchemy import CursorResult, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cloudlet.agent.models import AgentConversation, AgentMessage, TelegramCursor, TelegramLink
from cloudlet.kit import clock


def add(session: Session, row: AgentConversation | AgentMessage | TelegramLink) -> None:
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


def remove(session: Session, row: AgentConversation | TelegramLink) -> None:
    session.delete(row)
    session.flush()


def telegram_link(session: Session, instance_uuid: str, *, lock: bool = False) -> TelegramLink | None:
    """The chat linked to a server."""
    query = select(TelegramLink).where(TelegramLink.instance_uuid == instance_uuid)
    return session.scalars(query.with_for_update() if lock else query).first()


def telegram_link_of_chat(session: Session, chat_id: str, *, lock: bool = False) -> TelegramLink | None:
    """The link of a chat, to whichever server."""
    query = select(TelegramLink).where(TelegramLink.chat_id == chat_id)
    return session.scalars(query.with_for_update() if lock else query).first()


def save_link(session: Session, link: TelegramLink) -> bool:
    """Write a link; False when a concurrent request linked the same chat or server first."""
    try:
        with session.begin_nested():
            session.add(link)
    except IntegrityError:
        return False
    return True


def next_update_id(session: Session, bot_id: str) -> int:
    """The first update id the bot has not taken (0 before any: Telegram's oldest unconfirmed)."""
    found = session.get(TelegramCursor, bot_id)
    return found.next_update_id if found is not None else 0


def take_update(session: Session, bot_id: str, update_id: int) -> bool:
    """Move the bot's cursor past an update, unless it is past it already (another round took it); whether this
    call moved it. The compare-and-set is one statement, so two rounds never both take an update."""
    if session.get(TelegramCursor, bot_id) is None:
        try:
            with session.begin_nested():
                session.add(TelegramCursor(bot_id=bot_id, next_update_id=0, updated_at=clock.now()))
        except IntegrityError:  # a concurrent round made it first; the update below decides
            pass
    result = session.execute(update(TelegramCursor)
                             .where(TelegramCursor.bot_id == bot_id, TelegramCursor.next_update_id <= update_id)
                             .values(next_update_id=update_id + 1, updated_at=clock.now())
                             .execution_options(synchronize_session=False))
    return isinstance(result, CursorResult) and result.rowcount == 1
