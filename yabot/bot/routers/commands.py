"""Commands and the main menu: /start, /menu, /help, /vip."""

from __future__ import annotations

from aiogram import Router
from aiogram.filters import CommandStart
from aiogram.types import Message

from yabot.bot import render, screens
from yabot.bot.context import UserHandle
from yabot.bot.keyboards import main_menu
from yabot.bot.routers.screens import register_screen
from yabot.bot.texts import text
from yabot.sessions.messages import Start


async def start(message: Message, user: UserHandle) -> None:
    """Create the user on first contact, greet them, show the menu."""
    welcome = await user.ask(Start(identity=user.identity))
    language = welcome.state.preferences.language
    key = "welcome_new" if welcome.created else "welcome_back"
    greeting = text(key, language, name=user.identity.first_name)
    menu = render.menu(welcome.state, language)
    await message.answer(f"{greeting}\n\n{menu.text}", reply_markup=main_menu(language))


def router() -> Router:
    commands = Router(name="commands")
    commands.message.register(start, CommandStart())
    register_screen(commands, "menu", screens.menu)
    register_screen(commands, "help", screens.help_)
    register_screen(commands, "vip", screens.vip)
    return commands
