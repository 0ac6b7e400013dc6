"""`ContextRenewal`: idle sessions' state snapshots kept fresh while the stores still hold
what they were read from, and never a change behind a session's back unseen for longer than
the max age."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TypeVar

import pytest

from actors import Ask, KeyedActors
from tests.support.clock import ManualClock
from tests.support.settings import SettingsFactory
from tests.support.stores import stores_on
from tests.support.threads import race
from tests.support.users import start_user
from tests.support.waiting import ASK
from yabot.domain.subscriptions import Plan
from yabot.domain.users import TelegramIdentity, UserChanges, utcnow
from yabot.errors import StoreUnavailable
from yabot.runtime import Runtime
from yabot.sessions import renewal as renewal_module
from yabot.sessions.messages import (
    GET_STATE,
    ChangeSubscription,
    GetState,
    Start,
    Transact,
)
from yabot.sessions.renewal import ContextRenewal
from yabot.sessions.session import SessionServices, UserSession
from yabot.stores.context import read_user_contexts
from yabot.stores.handles import Stores

MAX_AGE = 60.0
R = TypeVar("R")


@dataclass
class Renewing:
    sessions: KeyedActors[int, UserSession]
    stores: Stores
    clock: ManualClock
    renewal: ContextRenewal

    def ask(self, user_id: int, message: Ask[R]) -> R:
        return self.sessions.ask(user_id, message, timeout=ASK)

    def language(self, user_id: int = 1) -> str:
        return self.sessions.ask(user_id, GetState(), timeout=ASK).preferences.language

    def from_snapshot(self, user_id: int = 1) -> bool:
        """Would a state read now be answered from the snapshot (no trip to the session)?"""
        return self.sessions.published(user_id, GET_STATE) is not None


@pytest.fixture(params=["sqlite", "mongomock"])
def renewing(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Renewing]:
    clock = ManualClock(1000.0)
    with stores_on(request.param, request, tmp_path) as stores:
        services = SessionServices.build(stores, state_max_age=MAX_AGE, clock=clock)
        sessions: KeyedActors[int, UserSession] = KeyedActors(
            "sessions", lambda user_id: UserSession(user_id, services), clock=clock)
        try:
            yield Renewing(sessions, stores, clock, ContextRenewal(sessions, stores, MAX_AGE))
        finally:
            sessions.stop_all()


def _started(renewing: Renewing, *user_ids: int) -> None:
    for user_id in user_ids:
        renewing.ask(user_id, Start(identity=TelegramIdentity(user_id=user_id, first_name="Ana")))
        assert renewing.language(user_id) == "en"  # read, and published


def _behind_the_sessions_back(renewing: Renewing, user_id: int, language: str) -> None:
    renewing.stores.documents.users.update(user_id, UserChanges(language=language))


def test_an_unchanged_context_is_renewed_and_served_past_its_first_expiry(
    renewing: Renewing,
) -> None:
    _started(renewing, 1, 2)
    renewing.clock.now += 20
    assert renewing.renewal.renew() == (0, 0)  # 40 s left: not yet expiring
    renewing.clock.now += 20
    assert renewing.renewal.renew() == (2, 2)  # 20 s left: checked, the stores agree
    renewing.clock.now += 40  # 80 s after the read: renewed until 100
    assert renewing.from_snapshot(1)
    assert renewing.from_snapshot(2)
    assert renewing.language(1) == "en"


def test_a_change_behind_the_sessions_back_is_not_renewed_and_is_seen_at_the_max_age(
    renewing: Renewing,
) -> None:
    _started(renewing, 1, 2)
    renewing.clock.now += 40
    _behind_the_sessions_back(renewing, 1, "es")
    assert renewing.renewal.renew() == (2, 1)  # user 2 only
    renewing.clock.now += 20  # 60 s after the read
    assert not renewing.from_snapshot(1)
    assert renewing.language(1) == "es"  # read again by its session
    assert renewing.from_snapshot(2)


def test_a_change_made_after_a_check_is_seen_within_the_max_age_of_that_check(
    renewing: Renewing,
) -> None:
    _started(renewing, 1)
    renewing.clock.now += 40
    assert renewing.renewal.renew() == (1, 1)  # checked at 1040: fresh until 1100
    _behind_the_sessions_back(renewing, 1, "es")
    renewing.clock.now += 59
    assert renewing.language(1) == "en"  # within the max age of the check
    assert renewing.renewal.renew() == (1, 0)
    renewing.clock.now += 1
    assert renewing.language(1) == "es"


def test_a_session_that_handled_a_message_since_is_not_renewed(renewing: Renewing) -> None:
    _started(renewing, 1)
    renewing.clock.now += 40
    expiring = renewing.sessions.expiring(2 * MAX_AGE / 4)
    renewing.ask(1, ChangeSubscription(plan=Plan.VIP, ends_at=utcnow() + timedelta(days=7)))
    checked_at = renewing.sessions.now()
    [(user_id, snapshot)] = expiring
    assert not renewing.sessions.renew(user_id, snapshot, checked_at, MAX_AGE)
    assert renewing.sessions.expiring(MAX_AGE) == []  # the change dropped the context


def test_a_snapshot_is_never_renewed_past_the_subscriptions_end(renewing: Renewing) -> None:
    _started(renewing, 1)
    ends = utcnow() + timedelta(seconds=90)
    renewing.ask(1, ChangeSubscription(plan=Plan.VIP, ends_at=ends))
    assert renewing.sessions.ask(1, GetState(), timeout=ASK).subscription.vip
    renewing.clock.now += 40
    assert renewing.renewal.renew() == (1, 1)  # to 1100 at most, before the end (~1090)
    renewing.clock.now += 40
    assert renewing.renewal.renew() == (1, 1)  # the stores agree, but the end caps it
    renewing.clock.now += 20  # 1100: past the end
    assert not renewing.from_snapshot(1)


def test_a_store_that_fails_ends_the_pass_and_the_contexts_expire(
    renewing: Renewing, monkeypatch: pytest.MonkeyPatch,
) -> None:
    def unavailable(stores: Stores, user_ids: list[int]) -> dict[int, object]:
        raise StoreUnavailable("the database is down")

    _started(renewing, 1)
    renewing.clock.now += 40
    monkeypatch.setattr(renewal_module, "read_user_contexts", unavailable)
    assert renewing.renewal.renew() == (0, 0)
    renewing.clock.now += 20
    assert not renewing.from_snapshot(1)


def test_many_sessions_are_checked_a_batch_at_a_time(
    renewing: Renewing, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(renewal_module, "BATCH", 2)
    batches: list[list[int]] = []
    real = read_user_contexts

    def counted(stores: Stores, user_ids: list[int]) -> object:
        batches.append(sorted(user_ids))
        return real(stores, user_ids)

    monkeypatch.setattr(renewal_module, "read_user_contexts", counted)
    _started(renewing, 1, 2, 3, 4, 5)
    renewing.clock.now += 40
    assert renewing.renewal.renew() == (5, 5)
    assert [len(batch) for batch in batches] == [2, 2, 1]
    assert sorted(user for batch in batches for user in batch) == [1, 2, 3, 4, 5]


def test_renewing_all_the_time_never_lets_a_read_miss_a_change_answered_before_it(
    renewing: Renewing,
) -> None:
    """One thread earns and reads back, another renews every snapshot as fast as it can
    (whatever its age): no read may show a balance below one already answered."""
    _started(renewing, 1)
    earns = 150
    stale: list[tuple[int, int]] = []
    done = threading.Event()

    def earn_and_read() -> None:
        for n in range(1, earns + 1):
            answered = renewing.ask(1, Transact(kind="earn", amount=1, idempotency_key=f"e{n}"))
            seen = renewing.sessions.ask(1, GetState(), timeout=ASK).document.besitos
            if seen < answered.balance:
                stale.append((seen, answered.balance))
        done.set()

    def renew_everything() -> None:
        sessions = renewing.sessions
        while not done.is_set():
            checked_at = sessions.now()
            for user_id, snapshot in sessions.expiring(float("inf")):
                stored = read_user_contexts(renewing.stores, [user_id]).get(user_id)
                if stored == snapshot.basis:
                    sessions.renew(user_id, snapshot, checked_at, MAX_AGE)

    race(2, lambda index: earn_and_read() if index == 0 else renew_everything())

    assert stale == []
    assert renewing.sessions.ask(1, GetState(), timeout=ASK).document.besitos == earns


@pytest.mark.parametrize(("max_age", "running"), [("60", True), ("0", False)])
def test_the_runtime_renews_on_a_thread_while_contexts_are_kept(
    make_settings: SettingsFactory, max_age: str, running: bool,
) -> None:
    with Runtime(make_settings(ACTORS_SESSION_STATE_MAX_AGE=max_age)) as runtime:
        start_user(runtime, 1)
        runtime.sessions.ask(1, GetState(), timeout=ASK)
        assert runtime.renewal.running is running
        assert runtime.renewal.renew() == (0, 0)  # nothing is near its max age yet
    assert not runtime.renewal.running
