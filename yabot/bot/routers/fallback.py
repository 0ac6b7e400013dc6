"""Anything else a user writes: point them at the menu."""

from __future__ import annotations

from aiogram import Router
from aiogram.types import Message

from yabot.bot.context import UserHandle
from yabot.bot.texts import text


async def not_understood(message: Message, user: UserHandle | None) -> None:
    if user is None:
        return
    # A reply to that message: with several sent in a row, each answer says which it is about.
    await message.reply(text("not_understood", await user.language()))


def router() -> Router:
    fallback = Router(name="fallback")
    fallback.message.register(not_understood, flags={"action": "unknown"})
    return fallback
