"""What no other router took: a user's message, a button that no longer matches anything.

Every callback query is answered (an unanswered one leaves the user's client spinning): a
button whose data fits no current button — an old layout, or data that was never ours —
reads "that button no longer works". A message the user wrote (text, a photo, a sticker…)
gets a pointer to the menu; a service message (a pin, a web app's data, a payment receipt
nobody claimed) gets nothing.
"""

from __future__ import annotations

import structlog
from aiogram import Router
from aiogram.types import CallbackQuery, Message, PreCheckoutQuery

from yabot.bot.handle import UserHandle
from yabot.bot.texts import text

log = structlog.get_logger("yabot.bot")

#: Message contents a person writes; anything else is a service message.
USER_CONTENT = frozenset({
    "text", "photo", "sticker", "voice", "video", "video_note", "document", "audio",
    "animation", "contact", "location", "venue", "poll", "dice", "story", "game",
    "paid_media",
})


async def not_understood(message: Message, user: UserHandle) -> None:
    if message.content_type not in USER_CONTENT:
        return
    # A reply to that message: with several sent in a row, each answer says which it is about.
    await message.reply(text("not_understood", await user.language()))


async def button_expired(callback: CallbackQuery, user: UserHandle) -> None:
    log.info("button data matches no button", data=(callback.data or "")[:64])
    await callback.answer(text("button_expired", user.known_language()))


async def unknown_checkout(query: PreCheckoutQuery, user: UserHandle) -> None:
    log.info("pre-checkout query for no invoice of ours declined",
             payload=query.invoice_payload[:64])
    await query.answer(ok=False, error_message=text("button_expired", user.known_language()))


def router() -> Router:
    fallback = Router(name="fallback")
    fallback.message.register(not_understood, flags={"action": "unknown"})
    fallback.callback_query.register(button_expired, flags={"action": "stale_button"})
    fallback.pre_checkout_query.register(unknown_checkout)
    return fallback
