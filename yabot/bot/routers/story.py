"""The story: /story (or the menu) shows where the user is; a choice button takes them on and
the message becomes the next fragment."""

from __future__ import annotations

from aiogram import Bot, Router
from aiogram.types import CallbackQuery, Message

from yabot.bot import render, screens
from yabot.bot.handle import UpdateNote, UserHandle
from yabot.bot.keyboards import StoryChoice, StoryRestart
from yabot.bot.routers.registration import register_screen
from yabot.bot.texts import error_text, text
from yabot.errors import Conflict, Forbidden, InvalidChoice, StaleChoice, VipRequired
from yabot.sessions.messages import Choose, RestartStory


async def choose(callback: CallbackQuery, callback_data: StoryChoice, user: UserHandle,
                 note: UpdateNote, bot: Bot) -> None:
    note.details = {"fragment": callback_data.fragment, "choice": callback_data.choice}
    try:
        view = await user.ask(Choose(fragment_id=callback_data.fragment,
                                     choice_id=callback_data.choice))
    except StaleChoice:
        # An old button: say so briefly instead of failing; the story is where it was.
        await callback.answer(text("stale_choice", user.known_language()))
        return
    except VipRequired:
        language = await user.language()
        await callback.answer()
        await bot.send_message(user.user_id, text("vip_gate", language))
        return
    except (Conflict, Forbidden, InvalidChoice) as exc:  # too few besitos, an item missing …
        await callback.answer(error_text(exc, user.known_language()), show_alert=True)
        return
    reply = render.fragment(view, await user.language())
    await callback.answer()
    if isinstance(callback.message, Message):
        await callback.message.edit_text(reply.text, reply_markup=reply.keyboard)
    else:  # the button's message is too old to edit: send the fragment anew
        await bot.send_message(user.user_id, reply.text, reply_markup=reply.keyboard)


async def restart(callback: CallbackQuery, callback_data: StoryRestart, user: UserHandle,
                  bot: Bot) -> None:
    try:
        view = await user.ask(RestartStory(fragment_id=callback_data.fragment))
    except StaleChoice:  # pressed twice, or the story moved on meanwhile
        await callback.answer(text("stale_choice", user.known_language()))
        return
    reply = render.fragment(view, await user.language())
    await callback.answer()
    await bot.send_message(user.user_id, reply.text, reply_markup=reply.keyboard)


def router() -> Router:
    story = Router(name="story")
    register_screen(story, "story", screens.story)
    story.callback_query.register(choose, StoryChoice.filter(), flags={"action": "choice"})
    story.callback_query.register(restart, StoryRestart.filter(), flags={"action": "restart"})
    return story
