"""Commands and the main menu: /start, /menu, /help, /story, /wallet, /shop, /vip."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiogram import F, Router
from aiogram.filters import Command, CommandStart
from aiogram.types import CallbackQuery, Message

from yabot.bot import render, screens
from yabot.bot.context import UserHandle
from yabot.bot.keyboards import MenuAction, main_menu
from yabot.bot.render import Reply
from yabot.bot.texts import text
from yabot.sessions.messages import Start

Screen = Callable[[UserHandle], Awaitable[Reply]]

#: Command → the screen it shows; the menu's buttons show the same screens.
SCREENS: dict[str, Screen] = {
    "menu": screens.menu, "help": screens.help_, "story": screens.story,
    "wallet": screens.wallet, "shop": screens.shop, "vip": screens.vip,
}


async def start(message: Message, user: UserHandle) -> None:
    """Create the user on first contact, greet them, show the menu."""
    welcome = await user.ask(Start(identity=user.identity))
    language = welcome.state.preferences.language
    key = "welcome_new" if welcome.created else "welcome_back"
    greeting = text(key, language, name=user.identity.first_name)
    menu = render.menu(welcome.state, language)
    await message.answer(f"{greeting}\n\n{menu.text}", reply_markup=main_menu(language))


def _command_handler(screen: Screen) -> Callable[[Message, UserHandle], Awaitable[None]]:
    async def show(message: Message, user: UserHandle) -> None:
        reply = await screen(user)
        await message.answer(reply.text, reply_markup=reply.keyboard)

    return show


async def menu_button(callback: CallbackQuery, callback_data: MenuAction, user: UserHandle
                      ) -> None:
    """A main-menu button: the same screen as its command, as a new message."""
    reply = await SCREENS[callback_data.target](user)
    await callback.answer()
    if callback.message is not None:
        await callback.message.answer(reply.text, reply_markup=reply.keyboard)


def router() -> Router:
    commands = Router(name="commands")
    commands.message.register(start, CommandStart())
    for name, screen in SCREENS.items():
        commands.message.register(_command_handler(screen), Command(name),
                                  flags={"action": name})
    commands.callback_query.register(menu_button, MenuAction.filter(F.target.in_(SCREENS)),
                                     flags={"action": "menu_button"})
    return commands
