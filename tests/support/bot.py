"""The bot against the fake Bot API: its environment (polling or webhook) and the API app's
webhook route in falcon.testing."""

from __future__ import annotations

from typing import Any

import falcon.testing

from tests.support.fake_telegram import FakeTelegram
from tests.support.waiting import ASK
from yabot.api.app import create_app
from yabot.api.bridge import ApiBridge
from yabot.bot.webhook import SECRET_HEADER, WEBHOOK_PATH
from yabot.runtime import Runtime

BOT_TOKEN = "123456:TEST-token-for-the-fake-bot-api"
WEBHOOK_URL = "https://bot.example.org/telegram/webhook"
WEBHOOK_SECRET = "webhook-secret_0123456789"


def bot_env(fake: FakeTelegram, **extra: str) -> dict[str, str]:
    return {"TELEGRAM_BOT_TOKEN": BOT_TOKEN, "TELEGRAM_API_URL": fake.url,
            "BOT_RETRY_INITIAL_DELAY": "0.05", "BOT_RETRY_MAX_DELAY": "0.4",
            "BOT_POLLING_TIMEOUT": "1", **extra}


def webhook_env(fake: FakeTelegram, **extra: str) -> dict[str, str]:
    """`bot_env` in webhook mode."""
    return bot_env(fake, BOT_WEBHOOK_URL=WEBHOOK_URL, BOT_WEBHOOK_SECRET=WEBHOOK_SECRET,
                   **extra)


class WebhookClient:
    """The API app of a started ``runtime`` in falcon.testing: `post` runs the webhook route
    on the calling thread, as one of gunicorn's threads would."""

    def __init__(self, runtime: Runtime) -> None:
        app = create_app(runtime.settings, ApiBridge(runtime.sessions, ASK),
                         runtime.http_routes())
        self._client = falcon.testing.TestClient(app)

    def post(self, update: dict[str, Any]) -> falcon.testing.Result:
        return self._client.simulate_post(WEBHOOK_PATH, json=update,
                                          headers={SECRET_HEADER: WEBHOOK_SECRET})
