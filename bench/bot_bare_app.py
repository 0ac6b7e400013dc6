"""The baseline of `bench.bot`: a bare aiogram bot (its handler replies at once) behind the same
webhook resource, Falcon app and gunicorn worker as YABOT, with no actors and no stores but
the durable intake every update goes through (an SQLite file in a temporary directory)."""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from aiogram import Dispatcher, Router
from aiogram.types import Message

from actors import KeyedActors
from yabot.api.app import create_app
from yabot.api.bridge import ApiBridge
from yabot.bot.runner import BotRunner
from yabot.bot.webhook import WEBHOOK_PATH, TelegramWebhook
from yabot.intake.sql import SqlIntake
from yabot.settings import load_settings
from yabot.stores.engine import make_engine
from yabot.stores.tables import intake_entries


async def reply_at_once(message: Message) -> None:
    await message.answer("hi")


class BareApp:
    def __init__(self) -> None:
        self._app: Callable[..., Iterable[bytes]] | None = None
        self._runner: BotRunner | None = None

    def start(self) -> None:
        settings = load_settings()
        dispatcher = Dispatcher()
        router = Router()
        router.message.register(reply_at_once)
        dispatcher.include_router(router)
        folder = Path(tempfile.mkdtemp(prefix="bare-intake-"))
        engine = make_engine(f"sqlite:///{folder / 'intake.sqlite3'}")
        intake_entries.create(engine)
        runner = BotRunner(settings, dispatcher, SqlIntake(lambda: engine))
        runner.start()
        secret = settings.bot.webhook_secret
        assert secret is not None
        webhook = TelegramWebhook(runner, secret.get_secret_value(),
                                  settings.bot.webhook_max_body)
        nobody: KeyedActors[int, Any] = KeyedActors("unused", lambda _key: None)
        self._app = create_app(settings, ApiBridge(nobody, 1.0), {WEBHOOK_PATH: webhook})
        self._runner = runner

    def stop(self) -> None:
        if self._runner is not None:
            self._runner.stop()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]
                 ) -> Iterable[bytes]:
        assert self._app is not None
        return self._app(environ, start_response)


application = BareApp()
