"""At least once in, once in effect: an update delivered again (a Telegram retry, a replay of
the intake after a crash) changes nothing twice and gets no second reply."""

from __future__ import annotations

import json

from tests.bot.updates import message
from tests.support.bot import WebhookClient, webhook_env
from tests.support.fake_telegram import FakeTelegram
from tests.support.settings import SettingsFactory
from tests.support.waiting import eventually
from yabot.intake import IntakeEntry, partition_of
from yabot.runtime import Runtime


def replies(fake: FakeTelegram, chat_id: int) -> int:
    return len(fake.sent(chat_id=chat_id))


def test_a_telegram_retry_of_a_handled_update_gets_no_second_reply_even_after_a_restart(
    make_settings: SettingsFactory, fake_telegram: FakeTelegram
) -> None:
    settings = make_settings(**webhook_env(fake_telegram))
    start = message(61, "/start", update_id=5001)
    with Runtime(settings) as runtime:
        client = WebhookClient(runtime)
        assert client.post(start).status_code == 200
        eventually(lambda: replies(fake_telegram, 61) == 1, "the first reply")
        assert client.post(start).status_code == 200  # Telegram did not get our 200
        assert client.post(message(61, "/start", update_id=5002)).status_code == 200
        eventually(lambda: replies(fake_telegram, 61) == 2, "the reply to the next update")
        first = runtime.bot
        assert first is not None
        eventually(lambda: first.redeliveries_skipped == 1, "the retry skipped")
    with Runtime(settings) as runtime:  # a new process: the window is in the store
        client = WebhookClient(runtime)
        assert client.post(start).status_code == 200
        assert client.post(message(61, "/start", update_id=5003)).status_code == 200
        eventually(lambda: replies(fake_telegram, 61) == 3, "the reply to the new update")
        bot = runtime.bot
        assert bot is not None
        eventually(lambda: bot.redeliveries_skipped == 1, "the retry skipped after restart")
    assert replies(fake_telegram, 61) == 3


def test_a_replayed_intake_entry_is_handled_once(
    make_settings: SettingsFactory, fake_telegram: FakeTelegram
) -> None:
    settings = make_settings(**webhook_env(fake_telegram))
    with Runtime(settings) as runtime:
        client = WebhookClient(runtime)
        update = message(62, "/start", update_id=6001)
        assert client.post(update).status_code == 200
        eventually(lambda: replies(fake_telegram, 62) == 1, "the first reply")
        bot = runtime.bot
        assert bot is not None
        # The same entry once more in the log, as a takeover replays what was not acked.
        bot.intake.append([IntakeEntry(partition=partition_of(62, settings.scale.partitions),
                                        key=62, body=json.dumps(update))])
        eventually(lambda: bot.redeliveries_skipped == 1, "the replay skipped")
    assert replies(fake_telegram, 62) == 1
