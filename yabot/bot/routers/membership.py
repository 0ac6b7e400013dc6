"""``my_chat_member``: the bot's own membership changed.

In a private chat that is the user blocking the bot ("kicked"; Telegram's 403 comes from
here) or unblocking it. In a group, supergroup or channel it is the bot being added or
removed, which says nothing about the person who did it: logged, never recorded as a block.
"""

from __future__ import annotations

import structlog
from aiogram import Router
from aiogram.types import ChatMemberUpdated

from yabot.bot.handle import UpdateNote

log = structlog.get_logger("yabot.bot")

PRESENT = frozenset({"member", "administrator", "creator", "restricted"})


async def membership_changed(event: ChatMemberUpdated, note: UpdateNote) -> None:
    status = event.new_chat_member.status
    if event.chat.type != "private":
        log.info("the bot's membership of a chat changed", chat_id=event.chat.id,
                 chat_type=event.chat.type, status=status)
        return
    if status == "kicked":
        note.action = "blocked"
        log.info("the user blocked the bot", chat_id=event.chat.id)
    elif status in PRESENT:
        note.action = "unblocked"
        log.info("the user unblocked the bot", chat_id=event.chat.id)


def router() -> Router:
    membership = Router(name="membership")
    membership.my_chat_member.register(membership_changed)
    return membership
