"""Notifications: the notifications consumer group queues one message per cause, the
notifier sends it through the bot (fake Bot API) within a shared rate bound, honouring 429,
never to a user who turned notifications off or blocked the bot."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from tests.support.bot import bot_env
from tests.support.fake_telegram import FakeTelegram
from tests.support.settings import SettingsFactory
from tests.support.users import start_user
from tests.support.waiting import ASK, eventually
from yabot.domain.subscriptions import Plan
from yabot.domain.users import UserDocument
from yabot.events.groups import handle_once
from yabot.events.models import SubscriptionChanged, UserInteraction
from yabot.notifications.counters import NotificationCounters, notification_counters
from yabot.notifications.group import NotificationRules, notifications_group
from yabot.notifications.sender import ChatBlocked, Notifier, RetryLater, TokenBucket
from yabot.notifications.texts import notification_text
from yabot.runtime import Runtime
from yabot.sessions.messages import (
    ChangeSubscription,
    GetSubscription,
    GiftItem,
    Preferences,
    RecordUpdate,
    SetPreferences,
    Transact,
)
from yabot.stores.engine import make_engine
from yabot.stores.tables import blocked_chats, metadata, notifications

GIVER, RECIPIENT = 7, 8


@pytest.fixture
def bot_runtime(make_settings: SettingsFactory, fake_telegram: FakeTelegram) -> Iterator[Runtime]:
    settings = make_settings(**bot_env(fake_telegram), EVENTS_REPLAY_INTERVAL="0.05")
    assert settings.redis.url is None  # the embedded default: in-process delivery
    with Runtime(settings) as runtime:
        start_user(runtime, GIVER)
        start_user(runtime, RECIPIENT, language="es")
        runtime.sessions.ask(GIVER, Transact(kind="earn", amount=10, idempotency_key="seed"),
                             timeout=ASK)
        yield runtime


def gift(runtime: Runtime, key: str) -> None:
    runtime.sessions.ask(GIVER, GiftItem(sku="rose", to_user_id=RECIPIENT, idempotency_key=key),
                         timeout=ASK)


def test_without_redis_a_gift_reaches_the_recipients_chat_once_in_their_language(
    bot_runtime: Runtime, fake_telegram: FakeTelegram
) -> None:
    sent_before = notification_counters.get("sent")
    gift(bot_runtime, "gift-1")
    gift(bot_runtime, "gift-1")  # a replay of the same request: no new cause

    eventually(lambda: len(fake_telegram.sent(chat_id=RECIPIENT)) >= 1,
               "the gift notification reached the recipient's chat")
    eventually(lambda: notification_counters.get("sent") > sent_before, "the send settled")
    messages = fake_telegram.sent(chat_id=RECIPIENT)
    assert [m.params["text"] for m in messages] == [
        notification_text("gift", "es", sku="rose", stars="?")]
    assert fake_telegram.sent(chat_id=GIVER) == []  # the giver is not notified of a gift
    with bot_runtime.stores.relational.engine.connect() as conn:
        rows = conn.execute(select(notifications.c.user_id, notifications.c.kind,
                                   notifications.c.outcome)).all()
    assert rows == [(RECIPIENT, "gift", "sent")]


def test_with_notifications_off_a_gift_sends_nothing(
    bot_runtime: Runtime, fake_telegram: FakeTelegram
) -> None:
    bot_runtime.sessions.ask(RECIPIENT, SetPreferences(
        preferences=Preferences(language="es", notifications=False)), timeout=ASK)
    off_before = notification_counters.get("off")
    gift(bot_runtime, "gift-off")

    eventually(lambda: notification_counters.get("off") > off_before,
               "the notifications group saw the gift and the preference")
    assert fake_telegram.sent(chat_id=RECIPIENT) == []
    with bot_runtime.stores.relational.engine.connect() as conn:
        assert conn.execute(select(notifications)).all() == []


def test_a_user_who_blocked_the_bot_is_not_notified(
    bot_runtime: Runtime, fake_telegram: FakeTelegram
) -> None:
    blocked_before = notification_counters.get("blocked")
    bot_runtime.sessions.tell(RECIPIENT, RecordUpdate(update_id=1, update_kind="my_chat_member",
                                                      action="blocked"))
    gift(bot_runtime, "gift-blocked")

    eventually(lambda: notification_counters.get("blocked") > blocked_before,
               "the gift to a user who blocked the bot was dropped")
    assert fake_telegram.sent(chat_id=RECIPIENT) == []


def test_a_lapsed_vip_is_told_once_in_their_language(
    make_settings: SettingsFactory, fake_telegram: FakeTelegram
) -> None:
    settings = make_settings(**bot_env(fake_telegram), EVENTS_REPLAY_INTERVAL="0.05",
                             EVENTS_SCHEDULER_POLL_INTERVAL="0.05")
    with Runtime(settings) as runtime:
        start_user(runtime, 9, language="es")
        ends = datetime.now(UTC) + timedelta(seconds=2)
        runtime.sessions.ask(9, ChangeSubscription(plan=Plan.VIP, ends_at=ends), timeout=ASK)
        eventually(lambda: len(fake_telegram.sent(chat_id=9)) >= 1,
                   "the scheduler's VIP expiry led to a lapse notice")
        assert datetime.now(UTC) >= ends
        runtime.sessions.ask(9, GetSubscription(), timeout=ASK)  # a later look: no new cause
    assert [m.params["text"] for m in fake_telegram.sent(chat_id=9)] == [
        notification_text("vip_lapsed", "es")]


# ---- the group and the sender on their own (SQLite file) ---------------------------------


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'notifications.sqlite3'}")
    metadata.create_all(engine)
    yield engine
    engine.dispose()


def profile(language: str = "en", on: bool = True) -> NotificationRules:
    document = UserDocument.model_validate({"user_id": 1, "language": language,
                                            "notifications": on})
    return NotificationRules(lambda user_id: document, counters=NotificationCounters())


def queued(engine: Engine) -> list[tuple[str, str, str | None]]:
    with engine.connect() as conn:
        return [tuple(row) for row in conn.execute(
            select(notifications.c.kind, notifications.c.text, notifications.c.outcome)
            .order_by(notifications.c.created_at))]


def test_each_cause_is_queued_once_in_the_users_language(engine: Engine) -> None:
    group = notifications_group("n", profile("es"))
    lapsed = SubscriptionChanged(user_id=1, seq=3, plan="vip", status="expired")
    paid = UserInteraction(user_id=1, seq=1, action="stars-paid", details={"stars": "50"})
    refunded = UserInteraction(user_id=1, seq=2, action="stars-refunded",
                               details={"stars": "50"})
    active = SubscriptionChanged(user_id=1, seq=4, plan="vip", status="active")
    for event in (paid, refunded, lapsed, active):
        assert handle_once(engine, group.name, group.handlers, event)
        assert not handle_once(engine, group.name, group.handlers, event)  # redelivered

    assert queued(engine) == [
        ("payment", notification_text("payment", "es", stars="50"), None),
        ("refund", notification_text("refund", "es", stars="50"), None),
        ("vip_lapsed", notification_text("vip_lapsed", "es"), None),
    ]


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_the_bucket_bounds_the_rate_and_a_hold_stops_everyone() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=30, burst=30, clock=clock, sleep=clock.sleep)
    for _ in range(90):
        bucket.take()
    assert clock.now - 1000.0 == pytest.approx(2.0)  # 30 at once, then 30 per second
    bucket.hold(5)
    held_at = clock.now
    bucket.take()
    assert clock.now - held_at >= 5


def test_a_process_sends_at_its_share_of_the_rate_and_not_at_all_without_one(
    engine: Engine
) -> None:
    clock, share = FakeClock(), [0.5]
    bucket = TokenBucket(rate=30, burst=1, share=lambda: share[0], clock=clock,
                         sleep=clock.sleep)
    for _ in range(31):
        bucket.take()
    assert clock.now - 1000.0 == pytest.approx(2.0)  # 15 per second: half the partitions
    group = notifications_group("n", profile())
    handle_once(engine, group.name, group.handlers,
                UserInteraction(user_id=1, seq=1, action="gift-received",
                                details={"sku": "rose"}))
    sent: list[int] = []
    notifier = Notifier(lambda: engine, lambda: lambda chat_id, text: sent.append(chat_id),
                        bot_expected=True, bucket=bucket, counters=NotificationCounters())
    share[0] = 0.0  # another process owns every partition now
    assert not bucket.open()
    assert notifier.drain() == 0
    assert [outcome for _, _, outcome in queued(engine)] == [None]  # left for the others
    share[0] = 1.0
    assert notifier.drain() == 1
    assert sent == [1]


def test_the_notifier_honours_429_marks_blocked_users_and_sends_each_row_once(
    engine: Engine
) -> None:
    group = notifications_group("n", profile())
    for user_id, seq in ((1, 1), (2, 1)):
        handle_once(engine, group.name, group.handlers,
                    UserInteraction(user_id=user_id, seq=seq, action="gift-received",
                                    details={"sku": "rose"}))
    clock = FakeClock()
    sent: list[tuple[int, str]] = []
    floods = [3.0]

    def send(chat_id: int, text: str) -> None:
        if chat_id == 2:
            raise ChatBlocked("Forbidden: bot was blocked by the user")
        if floods:
            raise RetryLater(floods.pop())
        sent.append((chat_id, text))

    counters = NotificationCounters()
    notifier = Notifier(lambda: engine, lambda: send, bot_expected=True, counters=counters,
                        bucket=TokenBucket(clock=clock, sleep=clock.sleep))
    assert notifier.drain() == 2
    assert notifier.drain() == 0  # nothing is sent twice

    assert sent == [(1, notification_text("gift", "en", sku="rose", stars="?"))]
    assert clock.sleeps == [3.0]  # retry_after waited out, once
    assert (counters.get("retry_after"), counters.get("sent"), counters.get("blocked")) == (
        1, 1, 1)
    with engine.connect() as conn:
        assert conn.execute(select(blocked_chats.c.user_id)).scalars().all() == [2]
    assert [outcome for _, _, outcome in queued(engine)] == ["sent", "blocked"]


def test_without_a_bot_rows_wait_for_it_or_are_skipped_quietly(engine: Engine) -> None:
    group = notifications_group("n", profile())
    handle_once(engine, group.name, group.handlers,
                UserInteraction(user_id=1, seq=1, action="gift-received",
                                details={"sku": "rose"}, occurred_at=datetime.now(UTC)))
    counters = NotificationCounters()
    assert Notifier(lambda: engine, lambda: None, bot_expected=True,
                    counters=counters).drain() == 0  # the bot is starting: wait for it
    assert [outcome for _, _, outcome in queued(engine)] == [None]
    assert Notifier(lambda: engine, lambda: None, bot_expected=False,
                    counters=counters).drain() == 1
    assert counters.get("no-bot") == 1
    assert [outcome for _, _, outcome in queued(engine)] == ["no-bot"]
