"""`Send` through the running bot's aiogram ``Bot`` (imported only when a bot runs)."""

from __future__ import annotations

from aiogram.exceptions import TelegramBadRequest, TelegramForbiddenError, TelegramRetryAfter

from yabot.bot.runner import BotRunner
from yabot.notifications.sender import ChatBlocked, RetryLater, Send, Undeliverable


def telegram_send(runner: BotRunner, timeout: float) -> Send:
    """Sends on the bot's event loop and waits up to ``timeout`` s for Telegram's answer."""

    def send(chat_id: int, text: str) -> None:
        future = runner.run_on_loop(runner.bot.send_message(chat_id, text))
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
