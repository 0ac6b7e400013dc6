"""Telegram's flood control, as its FAQ describes it: on 429, wait ``retry_after`` seconds
and send the same request again."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import structlog
from aiogram.client.session.middlewares.base import (
    BaseRequestMiddleware,
    NextRequestMiddlewareType,
)
from aiogram.exceptions import TelegramRetryAfter
from aiogram.methods.base import TelegramType

if TYPE_CHECKING:
    from aiogram import Bot
    from aiogram.methods import Response, TelegramMethod

log = structlog.get_logger("yabot.bot")

#: A retry_after longer than this is not waited out inside an update: the error goes up.
MAX_WAIT = 60.0


class RetryAfter(BaseRequestMiddleware):
    """Client-session middleware: retries a Bot API call up to ``retries`` times after 429,
    each time after the ``retry_after`` Telegram asked for; then lets the error through."""

    def __init__(self, retries: int) -> None:
        self._retries = retries

    async def __call__(
        self,
        make_request: NextRequestMiddlewareType[TelegramType],
        bot: Bot,
        method: TelegramMethod[TelegramType],
    ) -> Response[TelegramType]:
        # Not `retry_call`/`RetryPolicy`: the wait is the one Telegram names, not a backoff.
        attempt = 0
        while True:
            try:
                return await make_request(bot, method)
            except TelegramRetryAfter as exc:
                attempt += 1
                if attempt > self._retries or exc.retry_after > MAX_WAIT:
                    raise
                log.warning("telegram flood control: waiting", method=type(exc.method).__name__,
                            retry_after=exc.retry_after, attempt=attempt)
                await asyncio.sleep(exc.retry_after)
