"""GetState from the session's published snapshot (`UserSession.snapshot`, `actors.Snapshot`):
read by the registry while the session is idle, never older than a change answered before
the read, and gone when the session lets its context go (a change, `Relinquish`,
passivation, the subscription starting or ending)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from actors import metrics
from tests.sessions.support import Sessions
from tests.support.actors import actor_kit
from tests.support.stores import stores_on
from tests.support.threads import race
from tests.support.users import start_user
from tests.support.waiting import ASK, eventually
from yabot.domain.subscriptions import Plan, Subscription, next_change
from yabot.domain.users import TelegramIdentity, UserChanges, utcnow
from yabot.runtime import Runtime
from yabot.sessions.messages import (
    ChangeSubscription,
    GetState,
    Relinquish,
    SetPreferences,
    Start,
    Transact,
)
from yabot.sessions.session import UserSession
from yabot.views import Preferences


def _from_snapshot() -> int:
    count: int = metrics.snapshot().get("UserSession", {}).get("snapshot_replies", 0)
    return count


def _language(runtime: Runtime, user_id: int = 1) -> str:
    return runtime.sessions.ask(user_id, GetState(), timeout=ASK).preferences.language


def _behind_the_sessions_back(runtime: Runtime, language: str) -> None:
    runtime.stores.documents.users.update(1, UserChanges(language=language))


def test_an_idle_session_is_read_from_its_snapshot_and_a_change_is_seen_at_once(
    runtime: Runtime,
) -> None:
    start_user(runtime, 1)
    assert _language(runtime) == "en"  # read from the stores, published
    before = _from_snapshot()
    assert _language(runtime) == "en"
    assert _from_snapshot() == before + 1
    runtime.sessions.ask(1, SetPreferences(preferences=Preferences(language="es")),
                         timeout=ASK)
    assert _language(runtime) == "es"


@pytest.mark.parametrize("let_go", ["relinquish", "passivate"])
def test_letting_the_context_go_drops_the_snapshot(runtime: Runtime, let_go: str) -> None:
    start_user(runtime, 1)
    assert _language(runtime) == "en"
    assert _language(runtime) == "en"  # from the snapshot
    _behind_the_sessions_back(runtime, "es")  # as another process owning the user would
    if let_go == "relinquish":
        runtime.sessions.tell(1, Relinquish())
    else:
        assert runtime.sessions.passivate(1)
        eventually(lambda: 1 not in runtime.sessions.live_keys(), "the session passivated")
    assert _language(runtime) == "es"


def test_a_read_never_sees_a_balance_older_than_an_earn_answered_before_it(
    runtime: Runtime,
) -> None:
    start_user(runtime, 1)
    earns, readers = 40, 4
    answered = [0]
    lock = threading.Lock()
    stale: list[tuple[int, int]] = []
    done = threading.Event()
    before = _from_snapshot()

    def work(index: int) -> None:
        if index == 0:
            for n in range(earns):
                result = runtime.sessions.ask(
                    1, Transact(kind="earn", amount=1, idempotency_key=f"earn-{n}"),
                    timeout=ASK)
                with lock:
                    answered[0] = result.balance
                # A read between earns, so that readers find the session idle too.
                runtime.sessions.ask(1, GetState(), timeout=ASK)
            done.set()
            return
        while not done.is_set():
            with lock:
                floor = answered[0]
            balance = runtime.sessions.ask(1, GetState(), timeout=ASK).document.besitos
            if balance < floor:
                with lock:
                    stale.append((balance, floor))

    race(readers + 1, work)

    assert stale == []
    assert answered[0] == earns
    assert _from_snapshot() > before  # some reads took the snapshot (and were checked)


@pytest.fixture
def session(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[UserSession]:
    """A session driven by hand in the test's thread (never started), on real stores."""
    with stores_on("sqlite", request, tmp_path) as stores, actor_kit() as kit:
        services = Sessions(kit, stores, state_max_age=3600.0).services
        session = UserSession(1, services)
        session.handle(Start(identity=TelegramIdentity(user_id=1, first_name="Ana")))
        yield session


def test_the_snapshot_is_the_reply_and_ends_when_the_subscription_does(
    session: UserSession,
) -> None:
    assert session.snapshot() is None  # nothing read yet
    state = session.handle(GetState())
    snapshot = session.snapshot()
    assert snapshot is not None
    assert snapshot.replies == {GetState(): state}
    assert 3500 < snapshot.fresh_for <= 3600  # the max age, less the time since the read

    ends = utcnow() + timedelta(seconds=300)
    session.handle(ChangeSubscription(plan=Plan.VIP, ends_at=ends))
    assert session.snapshot() is None  # a change: the context is gone
    assert session.handle(GetState()).subscription.vip
    snapshot = session.snapshot()
    assert snapshot is not None
    assert 0 < snapshot.fresh_for <= 300  # VIP ends then: this reply would be wrong after


def test_next_change_is_the_start_or_end_still_ahead() -> None:
    now = utcnow()
    later = Subscription(user_id=1, plan=Plan.VIP, starts_at=now + timedelta(hours=1),
                         ends_at=now + timedelta(hours=2))
    assert next_change(later, now) == later.starts_at
    assert next_change(later, now + timedelta(minutes=90)) == later.ends_at
    assert next_change(later, now + timedelta(hours=3)) is None
    assert next_change(None, now) is None
