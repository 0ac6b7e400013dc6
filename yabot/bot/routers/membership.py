"""``my_chat_member``: the user blocked or unblocked the bot (Telegram's 403 comes from here)."""

from __future__ import annotations

import structlog
from aiogram import Router
from aiogram.types import ChatMemberUpdated

from yabot.bot.context import UpdateNote

log = structlog.get_logger("yabot.bot")


async def membership_changed(event: ChatMemberUpdated, note: UpdateNote) -> None:
    status = event.new_chat_member.status
    if status == "kicked":
        note.action = "blocked"
        log.info("the user blocked the bot", chat_id=event.chat.id)
    elif status == "member":
        note.action = "unblocked"
        log.info("the bot joined or was unblocked", chat_id=event.chat.id)


def router() -> Router:
    membership = Router(name="membership")
    membership.my_chat_member.register(membership_changed)
    return membership
