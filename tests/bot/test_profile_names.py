"""A Telegram profile is stored as the profile's columns can hold it, on PostgreSQL (which
refuses a NUL and a value longer than the column): the first name cleaned and cut to
`MAX_FIRST_NAME`, a username or language tag of the wrong shape dropped, so the person is
still welcomed. (`PUT /user/{id}` refuses the same values with 400: tests/api.)"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.bot import updates
from tests.bot.conversation import Conversation
from tests.support.bot import bot_env
from tests.support.fake_telegram import FakeTelegram
from tests.support.settings import SettingsFactory
from yabot.domain.users import MAX_FIRST_NAME
from yabot.runtime import Runtime


@pytest.fixture
def bot_on_postgres(make_settings: SettingsFactory, fake_telegram: FakeTelegram,
                    fresh_postgres_url: str) -> Iterator[Runtime]:
    settings = make_settings(DATABASE_URL=fresh_postgres_url, **bot_env(fake_telegram))
    with Runtime(settings) as runtime:
        yield runtime


def start_as(fake: FakeTelegram, user_id: int, **sender: Any) -> str:
    """/start from ``user_id`` with the sender's profile fields ``sender``; the welcome."""
    update = updates.message(user_id, "/start")
    update["message"]["from"].update(sender)
    before = len(Conversation(fake, user_id).to_me())
    fake.push_update(update)
    welcome = Conversation(fake, user_id)._next(before)
    text: str = welcome.params["text"]
    return text


@pytest.mark.parametrize(("sent", "stored"), [
    ("Ana\x00Lucía", "AnaLucía"),
    ("Z" * 10_000, "Z" * MAX_FIRST_NAME),
    ("\x07Bo\x1b[31mb\x7f\x9b\ud800" + "é" * 300, "Bo[31mb" + "é" * (MAX_FIRST_NAME - 7)),
])
def test_a_first_name_no_column_can_hold_is_cleaned_and_the_user_welcomed(
    bot_on_postgres: Runtime, fake_telegram: FakeTelegram, sent: str, stored: str
) -> None:
    user_id = 7000 + len(sent)
    welcome = start_as(fake_telegram, user_id, first_name=sent)
    assert "Welcome" in welcome
    profile = bot_on_postgres.stores.relational.profiles.get(user_id)
    assert profile is not None
    assert profile.first_name == stored


def test_a_username_or_language_of_the_wrong_shape_is_dropped(
    bot_on_postgres: Runtime, fake_telegram: FakeTelegram
) -> None:
    welcome = start_as(fake_telegram, 7100, first_name="Ana", username="ana\x00" + "x" * 100,
                       language_code="es\x00" + "-x" * 20)
    assert "Welcome" in welcome  # no language Telegram reports: English
    profile = bot_on_postgres.stores.relational.profiles.get(7100)
    assert profile is not None
    assert (profile.first_name, profile.username, profile.language_code) == ("Ana", None, None)
    assert start_as(fake_telegram, 7101, first_name="Bea", username="bea_7",
                    language_code="es-ES").startswith("¡Bienvenid")
    kept = bot_on_postgres.stores.relational.profiles.get(7101)
    assert kept is not None
    assert (kept.username, kept.language_code) == ("bea_7", "es-ES")
