"""`Send` through the running bot's aiogram ``Bot`` (imported only when a bot runs)."""

from __future__ import annotations

import concurrent.futures
from collections.abc import Callable, Coroutine
from typing import Any

from aiogram import Bot
from aiogram.exceptions import TelegramBadRequest, TelegramForbiddenError, TelegramRetryAfter

from yabot.notifications.sender import ChatBlocked, RetryLater, Send, Undeliverable

#: Runs a coroutine on the bot's event loop from another thread (`BotRunner.run_on_loop`).
RunOnLoop = Callable[[Coroutine[Any, Any, Any]], concurrent.futures.Future[Any]]


def telegram_send(bot: Bot, run_on_loop: RunOnLoop, timeout: float) -> Send:
    """Sends with ``bot`` on its event loop and waits up to ``timeout`` s for Telegram's
    answer. The bot's own 429 handling (`yabot.bot.flood`) waits out ``retry_after`` inside
    the call; a 429 that outlasts it is raised as `RetryLater`."""

    def send(chat_id: int, text: str) -> None:
        future = run_on_loop(bot.send_message(chat_id, text))
        try:
            future.result(timeout)
        except TelegramRetryAfter as exc:
            raise RetryLater(exc.retry_after) from exc
        except TelegramForbiddenError as exc:
            raise ChatBlocked(exc.message) from exc
        except TelegramBadRequest as exc:
            raise Undeliverable(exc.message) from exc
        finally:
            future.cancel()  # no-op once done; stops a send that outlived its wait

    return send
