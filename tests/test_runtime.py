"""The application's supervisor tree in one process: failures are contained and repaired."""

from __future__ import annotations

from actors.testkit import Poison, crash
from tests.support.waiting import ASK, eventually
from yabot.domain.users import TelegramIdentity
from yabot.runtime import Runtime
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
