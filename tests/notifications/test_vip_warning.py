"""The warning ahead of a VIP's end, in the running application (fake Bot API): sent once at
``NOTIFICATIONS_VIP_WARNING_LEAD`` before the end, then the lapse notice once, in the user's
language — also across a restart between the two; nothing with notifications off; a
cancelled or moved subscription is not warned about at its old end."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from tests.support.bot import bot_env
from tests.support.clock import ManualClock
from tests.support.fake_telegram import Call, FakeTelegram
from tests.support.settings import SettingsFactory
from tests.support.users import start_user
from tests.support.waiting import ASK, eventually
from yabot.domain.subscriptions import Plan
from yabot.notifications.counters import notification_counters
from yabot.notifications.texts import notification_text
from yabot.runtime import Runtime
from yabot.scheduler.vip import expiry_key, warning_key
from yabot.sessions.messages import ChangeSubscription, Preferences, SetPreferences
from yabot.settings import Settings
from yabot.stores.tables import notifications, scheduled_jobs

USER = 9
#: The VIP ends this long after it starts; the warning comes LEAD before that.
LENGTH, LEAD = 2.0, 1.0


@pytest.fixture(params=["embedded", "redis"])
def settings_for(request: pytest.FixtureRequest, make_settings: SettingsFactory,
                 fake_telegram: FakeTelegram) -> Callable[[], Settings]:
    """The application's settings: without Redis (the embedded default) or with it."""
    extra: dict[str, str] = {}
    if request.param == "redis":
        url, prefix = request.getfixturevalue("local_redis")
        extra = {"REDIS_URL": url, "EVENTS_STREAM": f"{prefix}events",
                 "INTAKE_KEY_PREFIX": f"{prefix}yabot", "EVENTS_READ_BLOCK_MS": "50"}
    return lambda: make_settings(
        **bot_env(fake_telegram), EVENTS_REPLAY_INTERVAL="0.05",
        EVENTS_SCHEDULER_POLL_INTERVAL="0.05", NOTIFICATIONS_VIP_WARNING_LEAD=str(LEAD),
        **extra)


def texts(calls: list[Call]) -> list[str]:
    return [str(call.params["text"]) for call in calls]


def start_vip(runtime: Runtime, seconds: float = LENGTH) -> datetime:
    ends = datetime.now(UTC) + timedelta(seconds=seconds)
    runtime.sessions.ask(USER, ChangeSubscription(plan=Plan.VIP, ends_at=ends), timeout=ASK)
    return ends


def expected(ends: datetime) -> list[str]:
    return [notification_text("vip_warning", "es", ends=ends.strftime("%Y-%m-%d %H:%M")),
            notification_text("vip_lapsed", "es")]


def jobs(runtime: Runtime) -> set[str]:
    with runtime.stores.relational.engine.connect() as conn:
        return set(conn.execute(select(scheduled_jobs.c.key)).scalars())


def outcomes(runtime: Runtime) -> list[tuple[str, str | None]]:
    with runtime.stores.relational.engine.connect() as conn:
        return [(str(kind), outcome) for kind, outcome in conn.execute(
            select(notifications.c.kind, notifications.c.outcome)
            .order_by(notifications.c.created_at))]


def test_the_warning_comes_before_the_lapse_once_each_in_the_users_language(
    settings_for: Callable[[], Settings], fake_telegram: FakeTelegram
) -> None:
    with Runtime(settings_for()) as runtime:
        start_user(runtime, USER, language="es")
        ends = start_vip(runtime)
        eventually(lambda: len(fake_telegram.sent(chat_id=USER)) >= 1, "the warning was sent")
        eventually(lambda: len(fake_telegram.sent(chat_id=USER)) >= 2, "the lapse was told")
        eventually(lambda: not {warning_key(USER), expiry_key(USER)} & jobs(runtime),
                   "both jobs done")
        eventually(lambda: outcomes(runtime) == [("vip_warning", "sent"), ("vip_lapsed", "sent")],
                   "both settled as sent")
    assert texts(fake_telegram.sent(chat_id=USER)) == expected(ends)


def test_a_restart_between_the_warning_and_the_lapse_sends_each_once(
    settings_for: Callable[[], Settings], fake_telegram: FakeTelegram
) -> None:
    # The first process's scheduler runs on a hand-moved clock that reaches the warning's
    # time and never the end, so it stops between the two whatever the machine's speed.
    clock = ManualClock(time.time())
    with Runtime(settings_for(), scheduler_clock=clock) as runtime:
        start_user(runtime, USER, language="es")
        ends = start_vip(runtime)
        eventually(lambda: warning_key(USER) in jobs(runtime), "the warning job scheduled")
        clock.now = (ends - timedelta(seconds=LEAD)).timestamp()
        eventually(lambda: len(fake_telegram.sent(chat_id=USER)) >= 1, "the warning was sent")
        assert expiry_key(USER) in jobs(runtime)  # the lapse is still to come
    assert len(fake_telegram.sent(chat_id=USER)) == 1
    with Runtime(settings_for()) as restarted:
        eventually(lambda: len(fake_telegram.sent(chat_id=USER)) >= 2,
                   "the lapse was told by the restarted process")
        eventually(lambda: not {warning_key(USER), expiry_key(USER)} & jobs(restarted),
                   "both jobs done")
        eventually(lambda: outcomes(restarted) == [("vip_warning", "sent"),
                                                   ("vip_lapsed", "sent")],
                   "both settled as sent")
    assert texts(fake_telegram.sent(chat_id=USER)) == expected(ends)


def test_with_notifications_off_neither_is_sent(
    settings_for: Callable[[], Settings], fake_telegram: FakeTelegram
) -> None:
    off_before = notification_counters.get("off")
    with Runtime(settings_for()) as runtime:
        start_user(runtime, USER, language="es")
        runtime.sessions.ask(USER, SetPreferences(
            preferences=Preferences(language="es", notifications=False)), timeout=ASK)
        start_vip(runtime)
        eventually(lambda: notification_counters.get("off") >= off_before + 2,
                   "the warning and the lapse both met the preference")
        eventually(lambda: not {warning_key(USER), expiry_key(USER)} & jobs(runtime),
                   "both jobs done")
        with runtime.stores.relational.engine.connect() as conn:
            assert conn.execute(select(notifications)).all() == []
    assert fake_telegram.sent(chat_id=USER) == []


def test_a_cancelled_vip_is_not_warned_and_a_shorter_one_than_the_lead_neither(
    settings_for: Callable[[], Settings], fake_telegram: FakeTelegram
) -> None:
    with Runtime(settings_for()) as runtime:
        start_user(runtime, USER, language="es")
        start_vip(runtime, seconds=600)
        eventually(lambda: warning_key(USER) in jobs(runtime), "the warning job scheduled")
        runtime.sessions.ask(USER, ChangeSubscription(plan=Plan.VIP, status="cancelled"),
                             timeout=ASK)
        eventually(lambda: not {warning_key(USER), expiry_key(USER)} & jobs(runtime),
                   "both jobs cancelled with the subscription")
        start_vip(runtime, seconds=LEAD / 2)  # less left than the lead: nothing to warn of
        eventually(lambda: len(fake_telegram.sent(chat_id=USER)) >= 1, "the lapse was told")
        assert warning_key(USER) not in jobs(runtime)
    assert texts(fake_telegram.sent(chat_id=USER)) == [notification_text("vip_lapsed", "es")]
