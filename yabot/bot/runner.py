"""BotRunner: aiogram's Dispatcher on its own asyncio loop thread, fed by long polling."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import structlog
from aiogram import Bot, Dispatcher
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer

from actors import KeyedActors
from yabot.bot.middleware import UpdateContext
from yabot.bot.routers import commands
from yabot.settings import Settings

log = structlog.get_logger("yabot.bot")

STOP_TIMEOUT = 15.0


def build_dispatcher(sessions: KeyedActors[int, Any], settings: Settings) -> Dispatcher:
    """The Dispatcher with every router; handlers get ``sessions`` and ``ask_timeout`` injected."""
    dispatcher = Dispatcher(sessions=sessions, ask_timeout=settings.actors.ask_timeout)
    dispatcher.update.outer_middleware(UpdateContext())
    dispatcher.include_router(commands.router)
    return dispatcher


class BotRunner:
    """Owns the Telegram side: a thread running an asyncio loop with the Dispatcher in it.

    `start` returns once the loop runs; `stop` stops polling, closes the HTTP session and joins
    the thread. Updates in flight when `stop` is called finish first (aiogram waits for them).
    """

    def __init__(self, settings: Settings, sessions: KeyedActors[int, Any]) -> None:
        token = settings.bot.telegram_bot_token
        if token is None:
            raise ValueError("BotRunner needs TELEGRAM_BOT_TOKEN")
        self._token = token
        self._settings = settings
        self._dispatcher = build_dispatcher(sessions, settings)
        self._thread = threading.Thread(target=self._run, name="telegram", daemon=False)
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None

    def start(self) -> None:
        self._thread.start()
        self._ready.wait()

    def stop(self) -> None:
        loop, stopping = self._loop, self._stopping
        if loop is not None and stopping is not None and not loop.is_closed():
            loop.call_soon_threadsafe(stopping.set)
        self._thread.join(STOP_TIMEOUT)
        if self._thread.is_alive():
            log.error("telegram thread did not stop in time")

    def _run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        self._ready.set()
        api = TelegramAPIServer.from_base(str(self._settings.bot.telegram_api_url))
        bot = Bot(self._token.get_secret_value(), session=AiohttpSession(api=api))
        log.info("telegram polling started", api=str(self._settings.bot.telegram_api_url))
        polling = asyncio.create_task(
            self._dispatcher.start_polling(bot, handle_signals=False, close_bot_session=True)
        )
        stop_requested = asyncio.create_task(self._stopping.wait())
        await asyncio.wait({polling, stop_requested}, return_when=asyncio.FIRST_COMPLETED)
        if not polling.done():
            await self._dispatcher.stop_polling()
        stop_requested.cancel()
        await polling
        log.info("telegram polling stopped")
