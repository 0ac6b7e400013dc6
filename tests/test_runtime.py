"""The application's supervisor tree in one process: failures are contained and repaired."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from actors import Ask, Quarantined, metrics
from actors.testkit import Poison, crash
from tests.support.settings import TEST_JWT_SECRET
from tests.support.waiting import ASK, eventually, scaled
from yabot.api.problems import to_http_error
from yabot.bot.texts import error_key
from yabot.domain.users import TelegramIdentity
from yabot.health import HealthStatus
from yabot.runtime import Runtime
from yabot.serving import _actor_tree_health
from yabot.sessions.messages import GetState, Start


def test_a_crashed_sql_store_restarts_with_the_document_store_and_sessions_keep_working(
    runtime: Runtime,
) -> None:
    identity = TelegramIdentity(user_id=42, first_name="Ana")
    runtime.sessions.ask(42, Start(identity=identity), timeout=ASK)
    sql, docs = runtime.find("stores/sql"), runtime.find("stores/docs")
    assert sql is not None
    assert docs is not None

    crash(sql)

    # rest_for_one: the document store may live on the SQL engine, so it restarts too.
    eventually(
        lambda: runtime.find("stores/sql") not in (None, sql)
        and runtime.find("stores/docs") not in (None, docs),
        "both stores restarted",
    )
    state = runtime.sessions.ask(42, GetState(), timeout=ASK)
    assert state.document.user_id == 42
    assert state.profile is not None
    assert state.profile.first_name == "Ana"
    assert not runtime.failed.is_set()


def test_a_crashed_session_affects_no_other_user(runtime: Runtime) -> None:
    for user_id in (1, 2):
        identity = TelegramIdentity(user_id=user_id, first_name=f"user {user_id}")
        runtime.sessions.ask(user_id, Start(identity=identity), timeout=ASK)
    other = runtime.find("sessions")
    assert other is not None

    runtime.sessions.tell(1, Poison())  # a message the session has no handler for

    eventually(lambda: 1 not in runtime.sessions.live_keys(), "user 1's session died")
    assert runtime.sessions.ask(2, GetState(), timeout=ASK).document.user_id == 2
    assert runtime.sessions.ask(1, GetState(), timeout=ASK).document.user_id == 1
    assert runtime.find("sessions") is other  # the registry itself was not restarted


def test_a_worker_without_a_bot_never_imports_aiogram(tmp_path: Path) -> None:
    """aiogram's models cost seconds of CPU to import: the API alone must not pay them."""
    script = (
        "import sys\n"
        "from yabot.serving import application\n"
        "from yabot.runtime import Runtime\n"
        "from yabot.settings import load_settings\n"
        "settings = load_settings()\n"
        "runtime = Runtime(settings)\n"
        "runtime.start(wait_for_bot=False)\n"
        "try:\n"
        "    application.bind(settings, runtime)\n"
        "finally:\n"
        "    application.shutdown()\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'aiogram'))\n"
    )
    env = {**os.environ, "YABOT_ENV": "test", "YABOT_DATA_DIR": str(tmp_path / "var"),
           "JWT_SECRET": TEST_JWT_SECRET}
    env.pop("TELEGRAM_BOT_TOKEN", None)
    done = subprocess.run([sys.executable, "-c", script], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=scaled(120), check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]", done.stdout


class Explode(Ask[None]):
    """An ask no session handles: every one fails the session (an `UnhandledMessage` bug)."""

    attempt: int


def test_one_users_session_failing_at_full_speed_is_quarantined_alone(
    runtime: Runtime,
) -> None:
    users = range(1, 52)  # user 1 fails; users 2..51 are served meanwhile
    for user_id in users:
        identity = TelegramIdentity(user_id=user_id, first_name=f"user {user_id}")
        runtime.sessions.ask(user_id, Start(identity=identity), timeout=ASK)
    keeper = runtime.find("sessions")
    others_done = threading.Event()
    quarantined = threading.Event()
    outcomes: Counter[str] = Counter()

    def fail_user_1() -> None:  # asks and tells that all fail, until quarantined and the
        attempt = 0             # others are done
        while not (quarantined.is_set() and others_done.is_set()) and attempt < 100_000:
            attempt += 1
            try:
                if attempt % 2:
                    runtime.sessions.ask(1, Explode(attempt=attempt), timeout=ASK)
                else:
                    runtime.sessions.tell(1, Poison())
                outcomes["told"] += 1
            except Quarantined:
                outcomes["Quarantined"] += 1
                quarantined.set()
            except Exception as exc:
                outcomes[type(exc).__name__] += 1

    def serve(user_id: int) -> list[int]:  # at least 20 asks, and on until user 1 is out
        seen: set[int] = set()
        asked = 0
        while asked < 20 or not (quarantined.is_set() or asked >= 100_000):
            seen.add(runtime.sessions.ask(user_id, GetState(), timeout=ASK).document.user_id)
            asked += 1
        return sorted(seen)

    failing = threading.Thread(target=fail_user_1)
    failing.start()
    try:
        eventually(lambda: outcomes["UnhandledMessage"] > 0, "user 1 failing")
        with ThreadPoolExecutor(50) as pool:
            served = list(pool.map(serve, users[1:]))  # raises if any of their asks failed
    finally:
        others_done.set()
        failing.join()

    assert served == [[user_id] for user_id in users[1:]]
    assert outcomes["Quarantined"] > 0, outcomes
    assert 1 in runtime.sessions.quarantined()
    with pytest.raises(Quarantined) as refused:
        runtime.sessions.ask(1, GetState(), timeout=ASK)
    assert error_key(refused.value) == "error_unavailable"  # the bot's friendly reply
    assert dict(to_http_error(refused.value).headers or {})["Retry-After"].isdigit()
    # The process and the registry stayed up: no restart, nothing escalated to the root.
    assert runtime.running
    assert not runtime.failed.is_set()
    assert runtime.find("sessions") is keeper
    # Reported: /readyz details (still ready: one user's problem) and /metrics.
    health = _actor_tree_health(runtime)
    assert health.status == HealthStatus.WARN
    assert health.details["quarantined"] == 1
    assert 'actors_quarantined{actor_class="UserSession"} 1' in metrics.prometheus_text()
