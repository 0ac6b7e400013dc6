"""The application in-process: the actor tree and the bot polling the fake Bot API."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.bot import bot_env
from tests.support.fake_telegram import FakeTelegram
from tests.support.settings import SettingsFactory
from yabot.runtime import Runtime


@pytest.fixture
def bot_runtime(make_settings: SettingsFactory, fake_telegram: FakeTelegram) -> Iterator[Runtime]:
    with Runtime(make_settings(**bot_env(fake_telegram))) as runtime:
        yield runtime
