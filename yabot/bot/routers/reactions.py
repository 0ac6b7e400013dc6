"""Reactions: a user reacting in their private chat with the bot earns besitos (up to a daily
cap, once per message).

Telegram sends ``message_reaction`` only when it is listed in ``allowed_updates`` and the bot
is an administrator of the chat; in a private chat with the bot it is sent as well. The update
does not say whose message was reacted to, so the rule is the chat's: only reactions in the
private chat count (there, nearly every message is the bot's). Reactions in groups and channels
earn nothing and are not answered.
"""

from __future__ import annotations

from aiogram import Bot, Router
from aiogram.types import MessageReactionUpdated, ReactionTypeCustomEmoji, ReactionTypeEmoji

from yabot.bot import render
from yabot.bot.handle import UpdateNote, UserHandle
from yabot.sessions.messages import React

MAX_REACTION = 64  # React.reaction


def _names(reactions: list[object]) -> list[str]:
    names = []
    for reaction in reactions:
        if isinstance(reaction, ReactionTypeEmoji):
            names.append(reaction.emoji)
        elif isinstance(reaction, ReactionTypeCustomEmoji):
            names.append(f"custom:{reaction.custom_emoji_id}")
    return [name[:MAX_REACTION] for name in names if name]


async def reacted(event: MessageReactionUpdated, user: UserHandle | None, note: UpdateNote,
                  bot: Bot) -> None:
    if user is None:  # an anonymous reaction (on behalf of a chat): nobody to reward
        return
    if event.chat.type != "private" or event.chat.id != user.user_id:
        return
    before = set(_names(list(event.old_reaction)))
    added = [name for name in _names(list(event.new_reaction)) if name not in before]
    if not added:  # a reaction taken back
        return
    note.details = {"reaction": added[0], "message_id": str(event.message_id)}
    reward = await user.ask(React(chat_id=event.chat.id, message_id=event.message_id,
                                  reaction=added[0]))
    reply = render.reaction_reward(reward, await user.language())
    if reply is not None:
        await bot.send_message(event.chat.id, reply.text)


def router() -> Router:
    reactions = Router(name="reactions")
    reactions.message_reaction.register(reacted, flags={"action": "reaction"})
    return reactions
