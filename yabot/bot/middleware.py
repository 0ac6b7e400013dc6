"""Dispatcher middleware: correlation ids on every update, one friendly reply on any error."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from aiogram import BaseMiddleware
from aiogram.types import TelegramObject, Update

from yabot.bot.texts import error_text
from yabot.domain.users import TelegramIdentity
from yabot.logs import bind_correlation_id

log = structlog.get_logger("yabot.bot")

Handler = Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]]


class UpdateContext(BaseMiddleware):
    """Binds a correlation id and the update id to every log line the update causes, and
    turns a handler's exception into a reply in the user's language (the error is logged)."""

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        assert isinstance(event, Update)
        structlog.contextvars.bind_contextvars(update_id=event.update_id)
        bind_correlation_id()
        try:
            return await handler(event, data)
        except Exception as exc:
            log.exception("update handling failed", error_type=type(exc).__name__)
            message = event.message
            if message is not None and message.from_user is not None:
                language = TelegramIdentity(
                    user_id=message.from_user.id, language_code=message.from_user.language_code
                ).language
                await message.answer(error_text(exc, language))
            return None
