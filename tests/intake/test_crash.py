"""``kill -9`` of a running bot with accepted updates in flight: after the restart every
update the webhook answered 200 for is handled — on the embedded SQLite intake and on Redis."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.bot.conftest import BOT_TOKEN, WEBHOOK_SECRET, WEBHOOK_URL
from tests.bot.updates import message
from tests.conftest import TEST_JWT_SECRET
from tests.support.fake_telegram import FakeTelegram
from tests.support.http import Response, request
from tests.support.processes import clean_env, free_port
from tests.support.waiting import eventually, scaled

USERS = 120
FIRST_USER = 700_000


class YabotRun:
    """`yabot run` in its own process group, so ``kill -9`` takes master and worker at once."""

    def __init__(self, env: dict[str, str], cwd: Path, name: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = cwd / f"{name}.log"
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "yabot", "run"],
                env=clean_env({**env, "API_PORT": str(self.port)}), cwd=cwd,
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def ready(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"yabot run exited:\n{self.log()}")
        try:
            return request("GET", self.url + "/readyz", timeout=1).status == 200
        except OSError:
            return False

    def post(self, update: dict[str, Any]) -> Response:
        return request("POST", self.url + "/telegram/webhook",
                       body=json.dumps(update).encode(),
                       headers={"Content-Type": "application/json",
                                "X-Telegram-Bot-Api-Secret-Token": WEBHOOK_SECRET})

    def kill9(self) -> None:
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(scaled(30))

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(scaled(30))
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)


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
    first = YabotRun(crash_env, tmp_path, "first")
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
    second = YabotRun(crash_env, tmp_path, "second")
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
