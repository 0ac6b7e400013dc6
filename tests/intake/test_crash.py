"""``kill -9`` of a running bot with accepted updates in flight: after the restart every
update the webhook answered 200 for is handled — on the embedded SQLite intake and on Redis."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.bot.updates import message
from tests.support.bot import BOT_TOKEN, WEBHOOK_SECRET, WEBHOOK_URL
from tests.support.fake_telegram import FakeTelegram
from tests.support.nodes import Node
from tests.support.settings import TEST_JWT_SECRET
from tests.support.waiting import eventually

pytestmark = pytest.mark.timeout(300)  # two process starts and a recovery per test

USERS = 120
FIRST_USER = 700_000


def env_for(tmp_path: Path, fake: FakeTelegram, **extra: str) -> dict[str, str]:
    return {"YABOT_ENV": "test", "YABOT_DATA_DIR": str(tmp_path / "var"),
            "JWT_SECRET": TEST_JWT_SECRET, "TELEGRAM_BOT_TOKEN": BOT_TOKEN,
            "TELEGRAM_API_URL": fake.url, "BOT_WEBHOOK_URL": WEBHOOK_URL,
            "BOT_WEBHOOK_SECRET": WEBHOOK_SECRET, "API_THREADS": "8",
            "BOT_MAX_CONCURRENT_UPDATES": "4", **extra}


@pytest.fixture(params=["sqlite", "redis"])
def crash_env(request: pytest.FixtureRequest, tmp_path: Path, fake_telegram: FakeTelegram
              ) -> dict[str, str]:
    if request.param == "sqlite":
        return env_for(tmp_path, fake_telegram)
    url, prefix = request.getfixturevalue("local_redis")
    return env_for(tmp_path, fake_telegram, REDIS_URL=url,
                   INTAKE_KEY_PREFIX=prefix.rstrip(":"), EVENTS_STREAM=prefix + "events",
                   RATE_LIMIT_KEY_PREFIX=prefix + "ratelimit")


def test_kill_9_with_accepted_updates_in_flight_loses_none_of_them(
    crash_env: dict[str, str], tmp_path: Path, fake_telegram: FakeTelegram
) -> None:
    fake = fake_telegram
    users = range(FIRST_USER, FIRST_USER + USERS)
    first = Node(crash_env, tmp_path, "first", webhook_secret=WEBHOOK_SECRET)
    try:
        eventually(first.ready, "the first process serves", 60)
        # Every reply waits on the Bot API: handlers pile up, the rest stays in the intake.
        release = fake.hold("sendMessage")
        statuses = [first.post(message(user, "/start", update_id=user)).status
                    for user in users]
        assert statuses == [200] * USERS
        eventually(lambda: fake.in_progress >= 1, "a handler is waiting on its reply")
        first.kill9()
    finally:
        first.stop()
    release.set()  # the killed process's held calls are answered into closed sockets
    before_restart = len(fake.calls)
    second = Node(crash_env, tmp_path, "second", webhook_secret=WEBHOOK_SECRET)
    try:
        eventually(second.ready, "the restarted process serves", 60)

        def unanswered() -> set[int]:
            replied = {int(c.params["chat_id"]) for c in fake.calls[before_restart:]
                       if c.method == "sendMessage"}
            replied |= {int(c.params["chat_id"]) for c in fake.calls[:before_restart]
                        if c.method == "sendMessage"}
            return set(users) - replied

        eventually(lambda: not unanswered(), "every accepted update handled", 120)
        handled_again = {int(c.params["chat_id"]) for c in fake.calls[before_restart:]
                         if c.method == "sendMessage"}
        assert handled_again, second.log()  # the restart, not the first process, did it
        assert "resuming pending intake entries" in second.log()
    finally:
        second.stop()
