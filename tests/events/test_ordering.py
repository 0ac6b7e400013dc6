from __future__ import annotations

from tests.support.clock import ManualClock
from yabot.events.counters import EventCounters
from yabot.events.ordering import OrderingBuffer


def buffer(clock: ManualClock, counters: EventCounters | None = None, gap_timeout: float = 5.0
           ) -> OrderingBuffer[str]:
    return OrderingBuffer(gap_timeout, clock, idle_ttl=60.0, counters=counters or EventCounters())


def test_in_order_events_are_released_at_once() -> None:
    buf = buffer(ManualClock())
    assert buf.offer(1, 1, "a") == ["a"]
    assert buf.offer(1, 2, "b") == ["b"]
    assert buf.offer(1, 3, "c") == ["c"]


def test_an_early_event_is_held_until_the_missing_one_arrives() -> None:
    buf = buffer(ManualClock())
    assert buf.offer(1, 1, "a") == ["a"]
    assert buf.offer(1, 3, "c") == []
    assert buf.offer(1, 4, "d") == []
    assert buf.held == 2
    assert buf.offer(1, 2, "b") == ["b", "c", "d"]
    assert buf.held == 0


def test_users_do_not_wait_for_each_other() -> None:
    buf = buffer(ManualClock())
    buf.offer(1, 1, "1a")
    assert buf.offer(1, 3, "1c") == []
    assert buf.offer(2, 1, "2a") == ["2a"]
    assert buf.offer(2, 2, "2b") == ["2b"]


def test_the_first_event_seen_for_a_user_starts_its_line() -> None:
    buf = buffer(ManualClock())
    assert buf.offer(1, 41, "x") == ["x"]
    assert buf.offer(1, 42, "y") == ["y"]


def test_a_gap_not_filled_in_time_is_reported_and_skipped() -> None:
    clock, counters = ManualClock(), EventCounters()
    buf = buffer(clock, counters)
    buf.offer(1, 1, "a")
    buf.offer(1, 4, "d")
    buf.offer(1, 5, "e")
    clock.now = 4.9
    assert buf.expire() == []
    clock.now = 5.0
    assert buf.expire() == ["d", "e"]
    assert counters.get("ordering_gaps") == 1
    assert counters.get("ordering_skipped_seqs") == 2
    assert buf.offer(1, 6, "f") == ["f"]


def test_an_event_from_a_skipped_gap_is_released_late() -> None:
    clock, counters = ManualClock(), EventCounters()
    buf = buffer(clock, counters, gap_timeout=1.0)
    buf.offer(1, 1, "a")
    buf.offer(1, 3, "c")
    clock.now = 1.0
    assert buf.expire() == ["c"]
    assert buf.offer(1, 2, "b") == ["b"]
    assert counters.get("ordering_late") == 1


def test_progress_restarts_the_gap_clock() -> None:
    clock = ManualClock()
    buf = buffer(clock, gap_timeout=1.0)
    buf.offer(1, 1, "a")
    buf.offer(1, 3, "c")
    buf.offer(1, 5, "e")
    clock.now = 0.9
    assert buf.offer(1, 2, "b") == ["b", "c"]
    clock.now = 1.5
    assert buf.expire() == []  # waiting for 4 only since 0.9
    clock.now = 2.0
    assert buf.expire() == ["e"]


def test_seq_one_after_a_higher_seq_restarts_the_line() -> None:
    counters = EventCounters()
    buf = buffer(ManualClock(), counters)
    buf.offer(1, 1, "a")
    buf.offer(1, 2, "b")
    buf.offer(1, 4, "old-d")
    assert buf.offer(1, 1, "new-a") == ["old-d", "new-a"]
    assert buf.offer(1, 2, "new-b") == ["new-b"]
    assert counters.get("ordering_restarts") == 1


def test_the_same_held_seq_twice_is_released_twice_in_place_for_deduplication() -> None:
    buf = buffer(ManualClock())
    buf.offer(1, 1, "a")
    assert buf.offer(1, 3, "c") == []
    assert buf.offer(1, 3, "c-again") == []
    assert buf.offer(1, 2, "b") == ["b", "c", "c-again"]


def test_idle_users_are_forgotten() -> None:
    clock = ManualClock()
    buf = buffer(clock)
    buf.offer(1, 7, "a")
    clock.now = 60.0
    assert buf.expire() == []
    # Forgotten: the next event starts a new line instead of waiting for seq 8.
    assert buf.offer(1, 20, "b") == ["b"]
