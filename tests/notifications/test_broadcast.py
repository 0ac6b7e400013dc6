"""Many notifications at once: thousands of VIP warnings (10,000 in the soak run) due at the
same moment, fired by four competing schedulers on PostgreSQL, each queue one message that
the notifier sends through the bot's real Bot API client (aiogram, with its 429 handling) to
the fake Bot API. Every
user gets theirs once; the sends, by the fake's own record of when each arrived, stay within
the token bucket's bound; and 429s are honoured: nothing is sent until ``retry_after`` has
passed since the refusal, and the refused message still arrives once."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, func, insert, make_url, select

from tests.support.bot import bot_env
from tests.support.bot_client import bot_client
from tests.support.clock import ManualClock
from tests.support.fake_telegram import Call, FakeTelegram
from tests.support.postgres import postgres_schema
from tests.support.settings import SettingsFactory
from tests.support.waiting import eventually, joined
from yabot.domain.subscriptions import Plan
from yabot.domain.users import UserDocument
from yabot.notifications.counters import NotificationCounters
from yabot.notifications.group import NotificationRules
from yabot.notifications.sender import Notifier, TokenBucket
from yabot.notifications.telegram import telegram_send
from yabot.notifications.texts import notification_text
from yabot.notifications.warning import warn_vip
from yabot.scheduler import JobHandlers, Scheduler, SchedulerMetrics
from yabot.scheduler.vip import VIP_WARNING, warning_key
from yabot.stores.engine import make_engine
from yabot.stores.tables import metadata, notifications, scheduled_jobs
from yabot.views import SubscriptionView

DUE = datetime(2026, 12, 2, 10, 0, tzinfo=UTC)
ENDS = DUE + timedelta(days=1)
#: The bucket's rate in this test (production: NOTIFICATIONS_RATE=30): high, so that
#: thousands of messages take seconds, and below what the fake and the client manage on a
#: busy 2-core machine (≈ 350/s), so the bucket is what bounds them.
RATE, BURST = 200.0, 1.0
#: 429s injected: the bot's client waits out BOT_FLOOD_RETRIES of them itself, and the next
#: one reaches the notifier, which holds its bucket for retry_after.
FLOOD_RETRIES, FLOODS, RETRY_AFTER = 1, 3, 1


@pytest.fixture
def engine() -> Iterator[Engine]:
    with postgres_schema() as url:
        # Commits not waiting for the disk: what is measured here is the sending, and a
        # busy test machine's fsync would stretch 20,000 commits to minutes.
        options = make_url(url).query["options"]
        engine = make_engine(make_url(url).update_query_dict(
            {"options": f"{options} -csynchronous_commit=off"}).render_as_string(False))
        metadata.create_all(engine)
        yield engine
        engine.dispose()


def user(user_id: int) -> UserDocument:
    return UserDocument.model_validate({"user_id": user_id, "notifications": True,
                                        "language": "es" if user_id % 2 else "en"})


def vip(user_id: int) -> SubscriptionView:
    return SubscriptionView(plan=Plan.VIP, status="active", ends_at=ENDS, vip=True)


def most_in_a_window(times: list[float], width: float) -> int:
    """The largest number of ``times`` (sorted) inside any half-open window of ``width``."""
    most, first = 0, 0
    for last, moment in enumerate(times):
        while moment - times[first] >= width:
            first += 1
        most = max(most, last - first + 1)
    return most


def sends_after_a_refusal_too_soon(sends: list[Call], refusals: list[Call]) -> list[float]:
    """For each 429, how early the next sendMessage after it came (empty: none too early)."""
    early = []
    for refusal in refusals:
        wait = float(refusal.result["parameters"]["retry_after"])
        following = [c.at for c in sends if c.at > refusal.at]
        if following and min(following) < refusal.at + wait:
            early.append(refusal.at + wait - min(following))
    return early


@pytest.mark.parametrize("count", [2_000, pytest.param(10_000, marks=pytest.mark.soak)])
def test_warnings_due_at_once_are_sent_once_each_within_the_rate_and_429s_are_honoured(
    engine: Engine, fake_telegram: FakeTelegram, make_settings: SettingsFactory, count: int
) -> None:
    with engine.begin() as conn:
        conn.execute(insert(scheduled_jobs), [
            {"key": warning_key(i), "kind": VIP_WARNING, "user_id": i, "due_at": DUE,
             "payload": {"ends_at": ENDS.isoformat()}, "created_at": DUE}
            for i in range(1, count + 1)
        ])
    settings = make_settings(**bot_env(fake_telegram),
                             BOT_FLOOD_RETRIES=str(FLOOD_RETRIES))
    fake_telegram.flood("sendMessage", retry_after=RETRY_AFTER, times=FLOODS)
    counters = NotificationCounters()
    clock = ManualClock(DUE.timestamp())

    with bot_client(settings) as client:
        send = telegram_send(client.bot, client.run_on_loop, timeout=60.0)
        notifier = Notifier(lambda: engine, lambda: send, bot_expected=True, counters=counters,
                            bucket=TokenBucket(RATE, BURST), batch=500)
        rules = NotificationRules(user, wake=notifier.wake, counters=counters)
        handlers = JobHandlers()
        handlers.on(VIP_WARNING, warn_vip(lambda: engine, rules, vip,
                                          lambda: datetime.fromtimestamp(clock(), UTC),
                                          counters=counters))
        schedulers = [Scheduler(lambda: engine, handlers, clock=clock, batch=250,
                                metrics=SchedulerMetrics()) for _ in range(4)]
        notifier.start()
        try:
            threads = [threading.Thread(target=s.fire_due) for s in schedulers]
            for thread in threads:
                thread.start()
            for thread in threads:
                joined(thread, "a scheduler fired its share")
            eventually(lambda: counters.get("sent") == count, f"{count} notifications sent",
                       ceiling=600.0)
        finally:
            notifier.stop()

    sends = fake_telegram.sent()
    by_chat = Counter(int(call.params["chat_id"]) for call in sends)
    assert set(by_chat) == set(range(1, count + 1))  # every user got theirs ...
    assert max(by_chat.values()) == 1  # ... once
    assert counters.get("queued") == count
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(scheduled_jobs)).scalar_one() == 0
        outcomes = {str(outcome): int(n) for outcome, n in conn.execute(
            select(notifications.c.outcome, func.count()).group_by(notifications.c.outcome))}
    assert outcomes == {"sent": count}
    first = next(call for call in sends if int(call.params["chat_id"]) == 1)
    assert first.params["text"] == notification_text("vip_warning", "es",
                                                      ends=ENDS.strftime("%Y-%m-%d %H:%M"))

    # The rate bound, from the fake's record of arrival times. A token bucket lets at most
    # BURST + RATE * w sends start within any w seconds; one send's arrival lies between its
    # own start and the next one's (the sender waits for each answer), hence one more.
    times = sorted(call.at for call in sends)
    for width in (1.0, 0.1):
        assert most_in_a_window(times, width) <= BURST + RATE * width + 1

    # 429s: each was answered, nothing was sent before its retry_after passed, and the
    # messages they refused arrived once (above) — both ways of honouring one were taken.
    refusals = fake_telegram.refusals
    assert [r.method for r in refusals] == ["sendMessage"] * FLOODS
    assert sends_after_a_refusal_too_soon(sends, refusals) == []
    assert counters.get("retry_after") == 1  # one outlasted the client's own retries
