"""The coordinator in the application's tree: seeded at start, restarted after a crash."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from actors.testkit import crash
from tests.support.settings import SettingsFactory
from tests.support.users import start_user
from tests.support.waiting import ASK, eventually
from yabot.errors import FragmentNotFound
from yabot.runtime import Runtime
from yabot.sessions.messages import GetWallet, ShowFragment, Transact


@pytest.fixture
def runtimes() -> Iterator[list[Runtime]]:
    started: list[Runtime] = []
    yield started
    for runtime in started:
        runtime.stop()


def run(runtimes: list[Runtime], make_settings: SettingsFactory, **env: str) -> Runtime:
    runtime = Runtime(make_settings(**env))
    runtimes.append(runtime)
    runtime.start()
    return runtime


def test_a_crashed_coordinator_is_restarted_and_transfers_go_on(
    runtimes: list[Runtime], make_settings: SettingsFactory,
) -> None:
    runtime = run(runtimes, make_settings)
    start_user(runtime, 1)
    start_user(runtime, 2)
    runtime.sessions.ask(1, Transact(kind="earn", amount=5, idempotency_key="e"), timeout=ASK)
    before = runtime.find("coordinator")
    assert before is not None

    crash(before)

    eventually(lambda: runtime.find("coordinator") not in (None, before),
               "the coordinator restarted")
    sent = runtime.sessions.ask(1, Transact(kind="transfer", amount=2, idempotency_key="t",
                                            to_user_id=2), timeout=ASK)
    assert (sent.applied, sent.balance) == (True, 3)
    assert runtime.sessions.ask(2, GetWallet(), timeout=ASK).balance == 2
    assert not runtime.failed.is_set()


def test_no_seed_at_start_when_turned_off(runtimes: list[Runtime],
                                          make_settings: SettingsFactory) -> None:
    runtime = run(runtimes, make_settings, STORY_SEED_ON_START="false")
    start_user(runtime, 1)
    with pytest.raises(FragmentNotFound):
        runtime.sessions.ask(1, ShowFragment(), timeout=ASK)
