"""GetState answered from the session's last read: never stale for changes made through the
session or told to it; a change behind its back shows once the session handles a change or
the read is older than ``state_max_age``."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

import yabot.services.subscriptions as subscriptions_module
from tests.sessions.support import Sessions, start
from tests.support.actors import actor_kit
from tests.support.settings import SettingsFactory
from tests.support.stores import stores_on
from tests.support.users import start_user
from tests.support.waiting import ASK
from yabot.domain.subscriptions import Plan
from yabot.domain.users import UserChanges, utcnow
from yabot.runtime import Runtime
from yabot.sessions.messages import ChangeSubscription, GetState, GetWallet, Transact


@pytest.fixture(params=["sqlite", "mongomock"])
def cached(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Sessions]:
    with stores_on(request.param, request, tmp_path) as stores, actor_kit() as kit:
        yield Sessions(kit, stores, state_max_age=3600.0)


def _behind_the_sessions_back(sessions: Sessions, user_id: int, language: str) -> None:
    sessions.stores.documents.users.update(user_id, UserChanges(language=language))


def test_reads_are_served_from_the_last_read_until_the_session_handles_a_change(
    cached: Sessions,
) -> None:
    start(cached, 1)
    assert cached.ask(1, GetState()).preferences.language == "en"
    _behind_the_sessions_back(cached, 1, "es")
    assert cached.ask(1, GetState()).preferences.language == "en"  # from memory
    assert cached.ask(1, GetWallet()).balance == 0  # a read keeps it
    assert cached.ask(1, GetState()).preferences.language == "en"
    cached.ask(1, Transact(kind="earn", amount=3, idempotency_key="e"))
    state = cached.ask(1, GetState())
    assert (state.preferences.language, state.document.besitos) == ("es", 3)


def test_a_transfer_to_the_user_is_seen_by_the_next_read(cached: Sessions) -> None:
    start(cached, 1)
    start(cached, 2)
    cached.ask(1, Transact(kind="earn", amount=10, idempotency_key="e"))
    assert cached.ask(2, GetState()).document.besitos == 0
    cached.ask(1, Transact(kind="transfer", amount=4, idempotency_key="t", to_user_id=2))
    # The sender's session told the recipient's (`Credited`) before it answered the sender.
    assert cached.ask(2, GetState()).document.besitos == 4


def test_a_subscription_read_from_memory_still_lapses_on_time(
    cached: Sessions, monkeypatch: pytest.MonkeyPatch,
) -> None:
    start(cached, 1)
    ends = utcnow() + timedelta(days=7)
    cached.ask(1, ChangeSubscription(plan=Plan.VIP, ends_at=ends))
    assert cached.ask(1, GetState()).subscription.vip
    _behind_the_sessions_back(cached, 1, "es")
    monkeypatch.setattr(subscriptions_module, "utcnow", lambda: ends + timedelta(seconds=1))
    state = cached.ask(1, GetState())
    assert state.preferences.language == "en"  # still the read from before the lapse
    assert (state.subscription.vip, state.subscription.status) == (False, "expired")


def test_with_no_max_age_every_read_goes_to_the_stores(tmp_path: Path,
                                                       request: pytest.FixtureRequest) -> None:
    with stores_on("sqlite", request, tmp_path) as stores, actor_kit() as kit:
        sessions = Sessions(kit, stores, state_max_age=0.0)
        start(sessions, 1)
        assert sessions.ask(1, GetState()).preferences.language == "en"
        _behind_the_sessions_back(sessions, 1, "es")
        assert sessions.ask(1, GetState()).preferences.language == "es"


@pytest.mark.parametrize(("max_age", "seen"), [("60", "en"), ("0", "es")])
def test_the_runtime_takes_the_max_age_from_settings(
    make_settings: SettingsFactory, max_age: str, seen: str,
) -> None:
    settings = make_settings(ACTORS_SESSION_STATE_MAX_AGE=max_age)
    with Runtime(settings) as runtime:
        start_user(runtime, 1)
        assert runtime.sessions.ask(1, GetState(), timeout=ASK).preferences.language == "en"
        runtime.stores.documents.users.update(1, UserChanges(language="es"))
        assert runtime.sessions.ask(1, GetState(), timeout=ASK).preferences.language == seen
