"""Console mode (`yabot chat`): the real Dispatcher and actors, a terminal instead of Telegram.

Lines typed become message updates from one console user; a bare number presses that inline
button of the bot's last message with buttons. What the bot would send through the Bot API
is printed instead: `ConsoleSession` is an aiogram client session that answers the Bot API
methods locally, so handlers run unchanged.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass
from typing import Any, TextIO, TypeVar, cast

from aiogram import Bot, Dispatcher
from aiogram.client.session.base import BaseSession
from aiogram.methods import (
    AnswerCallbackQuery,
    EditMessageText,
    GetMe,
    SendInvoice,
    SendMessage,
    TelegramMethod,
)
from aiogram.types import InlineKeyboardMarkup, Update

T = TypeVar("T")

CONSOLE_BOT = {"id": 1, "is_bot": True, "first_name": "YABOT", "username": "yabot_console_bot"}
CONSOLE_TOKEN = "1:console"  # noqa: S105 (aiogram checks the shape; nothing is sent anywhere)


@dataclass(frozen=True)
class Button:
    label: str
    data: str
    message_id: int
    message_text: str


class ConsoleSession(BaseSession):
    """Answers Bot API calls in-process and shows the messages with ``show``."""

    def __init__(self, show: Callable[[str, str, InlineKeyboardMarkup | None, int], None]
                 ) -> None:
        super().__init__()
        self._show = show
        self._message_ids = itertools.count(1)

    async def make_request(self, bot: Bot, method: TelegramMethod[T], timeout: int | None = None
                           ) -> T:
        result: Any
        if isinstance(method, SendMessage | EditMessageText):
            message_id = (method.message_id if isinstance(method, EditMessageText)
                          and method.message_id is not None else next(self._message_ids))
            markup = method.reply_markup if isinstance(method.reply_markup,
                                                       InlineKeyboardMarkup) else None
            kind = "edit" if isinstance(method, EditMessageText) else "message"
            self._show(kind, method.text or "", markup, message_id)
            result = {"message_id": message_id, "date": int(time.time()), "text": method.text,
                      "chat": {"id": int(method.chat_id or 0), "type": "private"},
                      "from": CONSOLE_BOT}
        elif isinstance(method, AnswerCallbackQuery):
            if method.text:
                self._show("notice", method.text, None, 0)
            result = True
        elif isinstance(method, GetMe):
            result = CONSOLE_BOT
        elif isinstance(method, SendInvoice):  # Stars are paid in Telegram, not here
            stars = sum(price.amount for price in method.prices)
            self._show("notice", f"invoice: {method.title} — {stars} {method.currency}", None, 0)
            result = {"message_id": next(self._message_ids), "date": int(time.time()),
                      "chat": {"id": int(method.chat_id or 0), "type": "private"},
                      "from": CONSOLE_BOT}
        else:
            result = True
        return cast(T, method.__returning__.model_validate(result, context={"bot": bot})
                    if hasattr(method.__returning__, "model_validate") else result)

    async def stream_content(self, url: str, headers: dict[str, Any] | None = None,
                             timeout: int = 30, chunk_size: int = 65536,
                             raise_for_status: bool = True) -> AsyncGenerator[bytes, None]:
        raise NotImplementedError("the console has no files")
        yield b""  # pragma: no cover  (makes this an async generator)

    async def close(self) -> None:
        return None


class Console:
    """One console user talking to ``dispatcher``; reads ``lines``, writes to ``out``."""

    def __init__(self, dispatcher: Dispatcher, out: TextIO, *, user_id: int, first_name: str,
                 language: str) -> None:
        self._dispatcher = dispatcher
        self._out = out
        self._user = {"id": user_id, "is_bot": False, "first_name": first_name,
                      "language_code": language}
        self._chat = {"id": user_id, "type": "private", "first_name": first_name}
        self._bot = Bot(CONSOLE_TOKEN, session=ConsoleSession(self._show))
        self._update_ids = itertools.count(1)
        self._message_ids = itertools.count(1_000_000)
        self._buttons: list[Button] = []

    def _show(self, kind: str, text: str, markup: InlineKeyboardMarkup | None,
              message_id: int) -> None:
        prefix = {"message": "bot>", "edit": "bot (edited)>", "notice": "bot (notice)>"}[kind]
        self._out.write(f"{prefix} {text}\n")
        if markup is not None:
            self._buttons = [
                Button(button.text, button.callback_data or "", message_id, text)
                for row in markup.inline_keyboard for button in row if button.callback_data
            ]
            for number, button in enumerate(self._buttons, 1):
                self._out.write(f"    [{number}] {button.label}\n")
        self._out.flush()

    async def say(self, line: str) -> None:
        """Handle one typed line: a number presses a button, anything else is a message."""
        line = line.strip()
        if not line:
            return
        if line.isdigit() and self._buttons:
            index = int(line) - 1
            if not 0 <= index < len(self._buttons):
                self._out.write(f"(no button {line}; choose 1-{len(self._buttons)})\n")
                return
            update = self._press(self._buttons[index])
        else:
            update = self._message(line)
        await self._dispatcher.feed_update(
            self._bot, Update.model_validate(update, context={"bot": self._bot})
        )

    def _message(self, text: str) -> dict[str, Any]:
        message: dict[str, Any] = {"message_id": next(self._message_ids),
                                   "date": int(time.time()), "chat": self._chat,
                                   "from": self._user, "text": text}
        if text.startswith("/"):
            message["entities"] = [{"type": "bot_command", "offset": 0,
                                    "length": len(text.split()[0])}]
        return {"update_id": next(self._update_ids), "message": message}

    def _press(self, button: Button) -> dict[str, Any]:
        return {"update_id": next(self._update_ids), "callback_query": {
            "id": f"console-{next(self._message_ids)}", "from": self._user,
            "chat_instance": "console", "data": button.data,
            "message": {"message_id": button.message_id, "date": int(time.time()),
                        "chat": self._chat, "from": CONSOLE_BOT, "text": button.message_text},
        }}

    async def run(self, read_line: Callable[[], str], prompt: str = "") -> None:
        """Until end of input: read a line (in a worker thread), handle it."""
        loop = asyncio.get_running_loop()
        try:
            while True:
                if prompt:
                    self._out.write(prompt)
                    self._out.flush()
                line = await loop.run_in_executor(None, read_line)
                if not line:
                    return
                await self.say(line)
        finally:
            await self._bot.session.close()
