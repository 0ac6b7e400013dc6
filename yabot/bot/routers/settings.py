"""/settings (or the menu's button): the user's language and notifications, changed in place."""

from __future__ import annotations

from aiogram import Router
from aiogram.types import CallbackQuery, Message

from yabot.bot import render, screens
from yabot.bot.handle import UpdateNote, UserHandle
from yabot.bot.keyboards import SettingsChange
from yabot.bot.routers.registration import register_screen
from yabot.sessions.messages import GetState, Preferences, SetPreferences


async def change(callback: CallbackQuery, callback_data: SettingsChange, user: UserHandle,
                 note: UpdateNote) -> None:
    current = (await user.ask(GetState())).preferences
    wanted = Preferences(
        language=callback_data.language or current.language,
        notifications=(current.notifications if callback_data.notifications is None
                       else callback_data.notifications == "on"),
    )
    note.details = {"language": wanted.language,
                    "notifications": str(wanted.notifications).lower()}
    if wanted == current:  # pressed what is already chosen: nothing to change or redraw
        await callback.answer()
        return
    state = await user.ask(SetPreferences(preferences=wanted))
    await callback.answer()
    reply = render.settings(state, wanted.language)
    if isinstance(callback.message, Message):
        await callback.message.edit_text(reply.text, reply_markup=reply.keyboard)


def router() -> Router:
    settings = Router(name="settings")
    register_screen(settings, "settings", screens.settings)
    settings.callback_query.register(change, SettingsChange.filter(),
                                     flags={"action": "settings"})
    return settings
