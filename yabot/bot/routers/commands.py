"""Commands and the main menu: /start, /menu, /help, /vip."""

from __future__ import annotations

from aiogram import Router
from aiogram.filters import CommandStart
from aiogram.types import Message

from yabot.bot import render, screens
from yabot.bot.handle import UserHandle
from yabot.bot.routers.registration import register_screen
from yabot.bot.texts import text


async def start(message: Message, user: UserHandle) -> None:
    """Create the user on first contact, greet them, show the menu."""
    welcome = await user.start()
    language = welcome.state.preferences.language
    key = "welcome_new" if welcome.created else "welcome_back"
    greeting = text(key, language, name=user.identity.first_name)
    menu = render.menu(welcome.state, language)
    await message.answer(f"{greeting}\n\n{menu.text}", reply_markup=menu.keyboard)


def router() -> Router:
    commands = Router(name="commands")
    commands.message.register(start, CommandStart())
    register_screen(commands, "menu", screens.menu)
    register_screen(commands, "help", screens.help_)
    register_screen(commands, "vip", screens.vip)
    return commands
