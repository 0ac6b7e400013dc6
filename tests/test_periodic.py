"""`PeriodicThread`: the one periodic loop (relay, recovery, notifier, scheduler)."""

from __future__ import annotations

import threading

from tests.support.waiting import eventually, wait_for_event
from yabot.periodic import PeriodicThread

HOUR = 3600.0  # an interval no test waits out: every call it sees is at start or woken


def test_immediately_calls_at_start_not_one_interval_later() -> None:
    called = threading.Event()
    thread = PeriodicThread("test-immediately", HOUR, called.set, immediately=True).start()
    try:
        wait_for_event(called, "the first call, at start")
    finally:
        thread.stop()


def test_a_failing_action_is_logged_and_the_thread_goes_on() -> None:
    calls: list[int] = []

    def action() -> None:
        calls.append(len(calls))
        if len(calls) == 1:
            raise RuntimeError("first pass fails")

    thread = PeriodicThread("test-failing", HOUR, action, immediately=True).start()
    try:
        eventually(lambda: len(calls) == 1, "the first (failing) call")
        thread.wake()
        eventually(lambda: len(calls) == 2, "a second call after the failure, when woken")
    finally:
        thread.stop()


def test_stop_before_the_first_call_makes_none() -> None:
    calls: list[int] = []
    thread = PeriodicThread("test-stopped", HOUR, lambda: calls.append(1), immediately=True)
    thread.stop()  # before start: the thread, once started, ends at once
    thread.start()
    thread.stop()
    assert calls == []
