"""Registering a screen: its command and its main-menu button show the same thing."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiogram import F, Router
from aiogram.filters import Command
from aiogram.types import CallbackQuery, Message

from yabot.bot.handle import UserHandle
from yabot.bot.keyboards import MenuAction, MenuTarget
from yabot.bot.render import Reply

Screen = Callable[[UserHandle], Awaitable[Reply]]


def register_screen(router: Router, name: MenuTarget | str, screen: Screen) -> None:
    """``/name`` and the menu button ``name`` both answer with ``screen`` as a new message."""

    async def by_command(message: Message, user: UserHandle) -> None:
        reply = await screen(user)
        await message.answer(reply.text, reply_markup=reply.keyboard)

    async def by_button(callback: CallbackQuery, user: UserHandle) -> None:
        reply = await screen(user)
        await callback.answer()
        if callback.message is not None:
            await callback.message.answer(reply.text, reply_markup=reply.keyboard)

    router.message.register(by_command, Command(name), flags={"action": name})
    router.callback_query.register(by_button, MenuAction.filter(F.target == name),
                                   flags={"action": f"menu_{name}"})
