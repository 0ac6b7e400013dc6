"""The application in-process (actor tree + the bot polling the fake Bot API)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import SettingsFactory
from tests.support.fake_telegram import FakeTelegram
from yabot.runtime import Runtime

BOT_TOKEN = "123456:TEST-token-for-the-fake-bot-api"


def bot_env(fake: FakeTelegram, **extra: str) -> dict[str, str]:
    return {"TELEGRAM_BOT_TOKEN": BOT_TOKEN, "TELEGRAM_API_URL": fake.url,
            "BOT_RETRY_INITIAL_DELAY": "0.05", "BOT_RETRY_MAX_DELAY": "0.4",
            "BOT_POLLING_TIMEOUT": "1", **extra}


@pytest.fixture
def bot_runtime(make_settings: SettingsFactory, fake_telegram: FakeTelegram) -> Iterator[Runtime]:
    with Runtime(make_settings(**bot_env(fake_telegram))) as runtime:
        yield runtime
