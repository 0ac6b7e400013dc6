"""Notifications with several processes (README "Scaling out"): each process consumes the
notifications group's stream as its own consumer of the same Redis consumer group, and each
runs a notifier over the shared database. Every event reaches one of them, and every message
is sent once — whichever process owns the user's partition: the group's ``processed_events``
mark and the ``notifications`` row keyed by the cause commit together, and a row is claimed by
one notifier before it is sent."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack

import pytest
import redis
from sqlalchemy import Engine, func, select

from tests.events.support import consuming
from tests.support.bot import bot_env
from tests.support.bot_client import bot_client
from tests.support.fake_telegram import FakeTelegram
from tests.support.postgres import postgres_schema
from tests.support.redis_server import no_retry
from tests.support.settings import SettingsFactory
from tests.support.waiting import eventually
from yabot.domain.users import UserDocument
from yabot.events.counters import EventCounters
from yabot.events.models import UserInteraction
from yabot.events.processor import StreamConsumer
from yabot.events.relay import stream_fields
from yabot.notifications.counters import NotificationCounters
from yabot.notifications.group import NotificationRules, notifications_group
from yabot.notifications.sender import Notifier, TokenBucket
from yabot.notifications.telegram import telegram_send
from yabot.settings import EventSettings
from yabot.stores.engine import make_engine
from yabot.stores.tables import metadata, notifications, processed_events

USERS = 300
PROCESSES = 2


@pytest.fixture
def engine() -> Iterator[Engine]:
    with postgres_schema() as url:
        engine = make_engine(url)
        metadata.create_all(engine)
        yield engine
        engine.dispose()


def user(user_id: int) -> UserDocument:
    return UserDocument.model_validate({"user_id": user_id, "notifications": True})


def test_two_processes_consume_and_send_each_notification_once(
    engine: Engine, local_redis: tuple[str, str], fake_telegram: FakeTelegram,
    make_settings: SettingsFactory
) -> None:
    url, prefix = local_redis
    client = redis.Redis.from_url(url, retry=no_retry())
    settings = EventSettings(stream=f"{prefix}events", read_block_ms=20, read_count=10,
                             claim_min_idle=0.5, claim_interval=0.2)
    group = f"{settings.consumer_group}:notifications"
    gifts = [UserInteraction(user_id=u, seq=1, action="gift-received", details={"sku": "rose"})
             for u in range(1, USERS + 1)]
    for gift in gifts:
        client.xadd(settings.stream, stream_fields(str(gift.event_id), gift.to_json()))
    bot_settings = make_settings(**bot_env(fake_telegram))
    counters = [NotificationCounters() for _ in range(PROCESSES)]
    handled = [EventCounters() for _ in range(PROCESSES)]

    with ExitStack() as stack:
        notifiers = []
        for index in range(PROCESSES):
            bot = stack.enter_context(bot_client(bot_settings))
            send = telegram_send(bot.bot, bot.run_on_loop, timeout=60.0)
            notifier = Notifier(lambda: engine, lambda send=send: send,  # type: ignore[misc]
                                bot_expected=True, counters=counters[index], interval=0.05,
                                batch=20, bucket=TokenBucket(1000.0))
            notifiers.append(notifier)
            rules = NotificationRules(user, wake=notifier.wake, counters=counters[index])
            stack.enter_context(consuming(StreamConsumer(
                client, lambda: engine, notifications_group(group, rules).handlers, settings,
                consumer=f"process-{index}", group=group, counters=handled[index])))
        for notifier in notifiers:
            notifier.start()
            stack.callback(notifier.stop)
        eventually(lambda: sum(c.get("sent") for c in counters) == USERS,
                   "every notification sent")
    client.close()

    by_chat = Counter(int(call.params["chat_id"]) for call in fake_telegram.sent())
    assert set(by_chat) == set(range(1, USERS + 1))
    assert max(by_chat.values()) == 1
    assert sum(c.get("queued") for c in counters) == USERS  # each event queued by one
    assert sum(h.get("handled") for h in handled) == USERS
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(processed_events)
                            .where(processed_events.c.consumer_group == group)
                            ).scalar_one() == USERS
        assert conn.execute(select(func.count()).select_from(notifications)
                            .where(notifications.c.outcome == "sent")).scalar_one() == USERS
