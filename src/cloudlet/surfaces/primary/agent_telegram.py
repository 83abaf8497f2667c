"""Primary surface: a server's agent reached from Telegram, through the operator's bot (agent/telegram.py).

    GET    /api/instances/{id}/agent/telegram     {"telegram_chat_id": "..."} or {"telegram_chat_id": null}
    POST   /api/instances/{id}/agent/telegram     {"telegram_chat_id"}: the link id the bot's /start reply gave
                                                  (the chat's id, negative for a group, and the bot's tag:
                                                  "123456789-k5rt2vq7m3xa"); 200 linked
    DELETE /api/instances/{id}/agent/telegram     204 unlinked (extension)

A linked chat talks to the server's agent as the user who linked it; a chat talks to one server, so linking it
to another moves it. 422 for an id the bot did not give (a bare chat id is no secret: the tag proves that the
caller read the bot's reply in that chat), 503 when the operator has set up no bot, 404 for another
project's server. Scopes: agent:read to read, agent:write to link and unlink.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response

from cloudlet.agent import telegram
from cloudlet.agent.schemas import TelegramLinkCreate, TelegramLinkRead
from cloudlet.auth.caller import Caller
from cloudlet.surfaces.deps import AppSettings, DbSession, requires
from cloudlet.tokens.abilities import Ability

router = APIRouter(prefix="/api", tags=["primary"])

Reader = Annotated[Caller, requires(Ability.AGENT_READ)]
Writer = Annotated[Caller, requires(Ability.AGENT_WRITE)]
InstanceId = Annotated[str, Path(max_length=64, description="Instance UUID.")]


@router.get("/instances/{instance_id}/agent/telegram", response_model=TelegramLinkRead,
            summary="Linked Telegram chat ID, or null")
def linked_chat(instance_id: InstanceId, caller: Reader, db: DbSession, settings: AppSettings) -> TelegramLinkRead:
    """The Telegram chat that talks to this server's agent, if any (its link id)."""
    return telegram.linked_chat(db, settings, caller, instance_id)


@router.post("/instances/{instance_id}/agent/telegram", response_model=TelegramLinkRead,
             summary="Link a Telegram chat to the server's agent")
def link_chat(instance_id: InstanceId, body: TelegramLinkCreate, caller: Writer, db: DbSession,
              settings: AppSettings) -> TelegramLinkRead:
    """Let the chat (its id from the bot's /start reply) talk to this server's agent as the caller."""
    return telegram.link_chat(db, settings, caller, instance_id, body)


@router.delete("/instances/{instance_id}/agent/telegram", status_code=204,
               summary="Unlink the server's Telegram chat (extension)")
def unlink_chat(instance_id: InstanceId, caller: Writer, db: DbSession) -> Response:
    """The chat no longer talks to this server's agent (the conversation stays)."""
    telegram.unlink_chat(db, caller, instance_id)
    return Response(status_code=204)
