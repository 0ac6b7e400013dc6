"""The bot's real Bot API client (aiogram, with its 429 handling) on an event loop of its own,
for tests of code that sends through the bot without running the whole bot."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from typing import Any

from aiogram import Bot

from tests.support.waiting import ASK, DEFAULT_CEILING, joined
from yabot.bot.runner import build_bot
from yabot.settings import Settings


class BotClient:
    """``bot`` (as `yabot.bot.runner.build_bot` makes it for ``settings``) and `run_on_loop`,
    as the running bot offers them to the notifications sender."""

    def __init__(self, settings: Settings) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="bot-client",
                                        daemon=True)
        self.bot: Bot = build_bot(settings)

    def run_on_loop(self, coroutine: Coroutine[Any, Any, Any]
                    ) -> concurrent.futures.Future[Any]:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop)

    def start(self) -> BotClient:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.run_on_loop(self.bot.session.close()).result(ASK)
        self._loop.call_soon_threadsafe(self._loop.stop)
        joined(self._thread, "the bot client's loop stopped", DEFAULT_CEILING)
        self._loop.close()


@contextmanager
def bot_client(settings: Settings) -> Iterator[BotClient]:
    client = BotClient(settings).start()
    try:
        yield client
    finally:
        client.stop()
