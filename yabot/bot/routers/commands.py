"""Bot commands: /start."""

from __future__ import annotations

from aiogram import Router
from aiogram.filters import CommandStart
from aiogram.types import Message

from actors import KeyedActors
from yabot.bot.texts import text
from yabot.domain.users import TelegramIdentity
from yabot.sessions.messages import Start
from yabot.sessions.session import UserSession

router = Router(name="commands")


@router.message(CommandStart())
async def start(
    message: Message, sessions: KeyedActors[int, UserSession], ask_timeout: float
) -> None:
    """Create the user on first contact and greet them."""
    if message.from_user is None:
        return
    sender = message.from_user
    identity = TelegramIdentity(
        user_id=sender.id, first_name=sender.first_name, username=sender.username,
        language_code=sender.language_code,
    )
    welcome = await sessions.ask_async(sender.id, Start(identity=identity), timeout=ask_timeout)
    key = "welcome_new" if welcome.created else "welcome_back"
    await message.answer(text(key, welcome.state.document.language, name=sender.first_name))
