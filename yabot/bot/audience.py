"""Who the bot talks to: private chats are its home; elsewhere it answers only what is
addressed to it, and never with a user's balance, story or status.

In a group or supergroup a message is addressed to the bot when it is one of the bot's own
commands (``/help``, ``/help@this_bot``; not ``/help@other_bot``) or a reply to one of the
bot's messages. Everything else there — chatter, service messages (members joining, pins,
migrations), a channel's automatic forwards, other bots — is ignored without a word. An
addressed message is answered in the group with a pointer to the private chat (or the help,
which says nothing about anyone); no session is asked, so nothing personal can leak. A button
pressed anywhere but in a private chat with the bot gets the same pointer as its answer.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from aiogram import BaseMiddleware, Bot
from aiogram.types import CallbackQuery, Message, TelegramObject, User

from yabot.bot.handle import UserHandle
from yabot.bot.texts import text

log = structlog.get_logger("yabot.bot")

Handler = Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]]

#: The commands the bot answers; in a group a bare ``/name`` counts as addressed to it only
#: for these (another bot in the group may have a command of its own).
COMMANDS = frozenset({"start", "menu", "help", "story", "wallet", "shop", "vip", "settings"})
PRIVATE = "private"


def command_of(message: Message) -> tuple[str, str] | None:
    """(name, mention) of the bot command the message starts with (mention "" if none)."""
    entities = message.entities or []
    if message.text is None or not entities:
        return None
    first = entities[0]
    if first.type != "bot_command" or first.offset != 0:
        return None
    word = message.text[1:first.length]
    name, _, mention = word.partition("@")
    return name.lower(), mention


def addressed_to(message: Message, me: User) -> bool:
    """Whether a message in a group is for the bot ``me`` (see the module docstring)."""
    if message.is_automatic_forward or message.sender_chat is not None:
        return False  # a channel's post or an anonymous admin: nobody to answer
    command = command_of(message)
    if command is not None:
        name, mention = command
        if mention:
            return me.username is not None and mention.lower() == me.username.lower()
        return name in COMMANDS
    reply = message.reply_to_message
    return reply is not None and reply.from_user is not None and reply.from_user.id == me.id


class Audience(BaseMiddleware):
    """Outer middleware on messages and callback queries: lets through what comes from a
    private chat; answers or ignores the rest itself (see the module docstring)."""

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        if isinstance(event, Message):
            if event.chat.type == PRIVATE:
                return await handler(event, data)
            await self._in_group(event, data)
            return None
        if isinstance(event, CallbackQuery):
            shown = event.message
            if shown is not None and shown.chat.type == PRIVATE:
                return await handler(event, data)
            await self._button_elsewhere(event, data)
            return None
        return await handler(event, data)

    async def _in_group(self, message: Message, data: dict[str, Any]) -> None:
        bot: Bot = data["bot"]
        user = data.get("user")
        if not isinstance(user, UserHandle):
            return  # another bot, an anonymous admin, a channel: quietly ignored
        me = await bot.me()
        if not addressed_to(message, me):
            return
        language = user.known_language()
        command = command_of(message)
        key = "help" if command is not None and command[0] == "help" else "private_only"
        log.info("answered in a group with a pointer to the private chat",
                 chat_id=message.chat.id, chat_type=message.chat.type)
        await message.reply(text(key, language, bot=me.username or ""))

    async def _button_elsewhere(self, callback: CallbackQuery, data: dict[str, Any]) -> None:
        bot: Bot = data["bot"]
        user = data.get("user")
        language = user.known_language() if isinstance(user, UserHandle) else "en"
        me = await bot.me()
        await callback.answer(text("private_only", language, bot=me.username or ""),
                              show_alert=True)
