"""The suite's own waiting and race helpers: what a test relies on when it uses them."""

from __future__ import annotations

import subprocess
import sys
import threading
from types import SimpleNamespace
from typing import Any

import pytest

from tests.support import waiting
from tests.support.processes import REPO
from tests.support.threads import race
from tests.support.waiting import eventually, joined, scaled


def test_the_time_scale_comes_from_the_environment_and_stretches_every_ceiling() -> None:
    read = subprocess.run(
        [sys.executable, "-c", "from tests.support import waiting as w; "
                               "print(w.TIME_SCALE, w.scaled(10), w.ASK)"],
        env={"YABOT_TEST_TIME_SCALE": "2.5", "PATH": ""}, cwd=REPO,
        capture_output=True, text=True, check=True, timeout=scaled(waiting.COMMAND_CEILING),
    )
    assert read.stdout.split() == ["2.5", "25.0", "150.0"]


def test_eventually_returns_once_the_predicate_holds() -> None:
    flag = threading.Event()
    threading.Timer(0.05, flag.set).start()
    eventually(flag.is_set, "the flag is set")
    assert flag.is_set()


def test_eventually_names_what_did_not_happen(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(waiting, "TIME_SCALE", 1.0)
    with pytest.raises(AssertionError, match="not within 0s: the moon turned blue"):
        eventually(lambda: False, "the moon turned blue", ceiling=0.05)


def test_joined_fails_for_a_thread_still_running(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(waiting, "TIME_SCALE", 1.0)
    release = threading.Event()
    thread = threading.Thread(target=release.wait)
    thread.start()
    try:
        with pytest.raises(AssertionError, match="the sleeper"):
            joined(thread, "the sleeper", ceiling=0.05)
    finally:
        release.set()
        thread.join()


def test_race_runs_every_thread_at_once_and_returns_results_in_thread_order() -> None:
    # Every thread must be inside `work` at the same moment for this barrier to open.
    inside = threading.Barrier(4, timeout=scaled(waiting.DEFAULT_CEILING))

    def work(index: int) -> int:
        inside.wait()
        return index * 10

    assert race(4, work) == [0, 10, 20, 30]


def test_race_fails_with_every_threads_error() -> None:
    def work(index: int) -> int:
        if index % 2:
            raise ValueError(f"odd {index}")
        return index

    with pytest.raises(AssertionError, match=r"2 of 4 threads failed: thread 1: ValueError: "
                                             r"odd 1; thread 3: ValueError: odd 3"):
        race(4, work)


def _case(label: str, user: int, body: object = None, query: object = None) -> Any:
    """What `Balances.observe` reads of a schemathesis case."""
    return SimpleNamespace(operation=SimpleNamespace(label=label),
                           path_parameters={"user_id": user}, body=body, query=query)


def test_the_fuzz_balance_model_catches_a_missing_transfer_credit() -> None:
    from tests.support.balances import Balances

    balances = Balances()
    balances.observe(_case("GET /user/{user_id}/state", 2), 200, {"besitos": 5})
    balances.observe(_case("POST /user/{user_id}/besitos", 1,
                           {"kind": "transfer", "amount": 3, "to_user_id": 2}), 200,
                     {"kind": "transfer", "amount": 3, "applied": True, "balance": 7})
    balances.observe(_case("GET /user/{user_id}/besitos", 1), 200,
                     {"entries": [{"balance_after": 7}], "next_cursor": None})
    assert balances.compared == {"GET /user/{user_id}/besitos": 1}
    balances.observe(_case("GET /user/{user_id}/state", 2), 409, {"besitos": 5})  # ignored
    with pytest.raises(AssertionError, match="user 2 has 5 besitos, expected 8"):
        balances.observe(_case("GET /user/{user_id}/state", 2), 200, {"besitos": 5})
