from __future__ import annotations

import itertools

from tests.support.clock import ManualClock
from yabot.events.counters import EventCounters
from yabot.events.ordering import OrderingBuffer


def buffer(clock: ManualClock, counters: EventCounters | None = None, gap_timeout: float = 5.0
           ) -> OrderingBuffer[str]:
    return OrderingBuffer(gap_timeout, clock, idle_ttl=60.0, counters=counters or EventCounters())


_produced = itertools.count(1)


def offer(buf: OrderingBuffer[str], user_id: int, seq: int, item: str,
          at: float | None = None) -> list[str]:
    """Offer ``item`` as produced at ``at``, by default after everything offered before."""
    return buf.offer(user_id, seq, item, float(next(_produced)) if at is None else at)


def test_in_order_events_are_released_at_once() -> None:
    buf = buffer(ManualClock())
    assert offer(buf, 1, 1, "a") == ["a"]
    assert offer(buf, 1, 2, "b") == ["b"]
    assert offer(buf, 1, 3, "c") == ["c"]


def test_an_early_event_is_held_until_the_missing_one_arrives() -> None:
    buf = buffer(ManualClock())
    assert offer(buf, 1, 1, "a") == ["a"]
    assert offer(buf, 1, 3, "c") == []
    assert offer(buf, 1, 4, "d") == []
    assert buf.held == 2
    assert offer(buf, 1, 2, "b") == ["b", "c", "d"]
    assert buf.held == 0


def test_users_do_not_wait_for_each_other() -> None:
    buf = buffer(ManualClock())
    offer(buf, 1, 1, "1a")
    assert offer(buf, 1, 3, "1c") == []
    assert offer(buf, 2, 1, "2a") == ["2a"]
    assert offer(buf, 2, 2, "2b") == ["2b"]


def test_the_first_event_seen_for_a_user_starts_its_line() -> None:
    buf = buffer(ManualClock())
    assert offer(buf, 1, 41, "x") == ["x"]
    assert offer(buf, 1, 42, "y") == ["y"]


def test_a_gap_not_filled_in_time_is_reported_and_skipped() -> None:
    clock, counters = ManualClock(), EventCounters()
    buf = buffer(clock, counters)
    offer(buf, 1, 1, "a")
    offer(buf, 1, 4, "d")
    offer(buf, 1, 5, "e")
    clock.now = 4.9
    assert buf.expire() == []
    clock.now = 5.0
    assert buf.expire() == ["d", "e"]
    assert counters.get("ordering_gaps") == 1
    assert counters.get("ordering_skipped_seqs") == 2
    assert offer(buf, 1, 6, "f") == ["f"]


def test_an_event_from_a_skipped_gap_is_released_late() -> None:
    clock, counters = ManualClock(), EventCounters()
    buf = buffer(clock, counters, gap_timeout=1.0)
    offer(buf, 1, 1, "a")
    offer(buf, 1, 3, "c")
    clock.now = 1.0
    assert buf.expire() == ["c"]
    assert offer(buf, 1, 2, "b") == ["b"]
    assert counters.get("ordering_late") == 1


def test_progress_restarts_the_gap_clock() -> None:
    clock = ManualClock()
    buf = buffer(clock, gap_timeout=1.0)
    offer(buf, 1, 1, "a")
    offer(buf, 1, 3, "c")
    offer(buf, 1, 5, "e")
    clock.now = 0.9
    assert offer(buf, 1, 2, "b") == ["b", "c"]
    clock.now = 1.5
    assert buf.expire() == []  # waiting for 4 only since 0.9
    clock.now = 2.0
    assert buf.expire() == ["e"]


def test_seq_one_after_a_higher_seq_restarts_the_line() -> None:
    counters = EventCounters()
    buf = buffer(ManualClock(), counters)
    offer(buf, 1, 1, "a")
    offer(buf, 1, 2, "b")
    offer(buf, 1, 4, "old-d")
    assert offer(buf, 1, 1, "new-a") == ["old-d", "new-a"]
    assert offer(buf, 1, 2, "new-b") == ["new-b"]
    assert counters.get("ordering_restarts") == 1


def test_the_same_held_seq_twice_is_released_twice_in_place_for_deduplication() -> None:
    buf = buffer(ManualClock())
    offer(buf, 1, 1, "a")
    assert offer(buf, 1, 3, "c") == []
    assert offer(buf, 1, 3, "c-again") == []
    assert offer(buf, 1, 2, "b") == ["b", "c", "c-again"]


def test_idle_users_are_forgotten() -> None:
    clock = ManualClock()
    buf = buffer(clock)
    offer(buf, 1, 7, "a")
    clock.now = 60.0
    assert buf.expire() == []
    # Forgotten: the next event starts a new line instead of waiting for seq 8.
    assert offer(buf, 1, 20, "b") == ["b"]


def test_the_first_two_events_arriving_swapped_are_not_taken_for_a_restart() -> None:
    clock, counters = ManualClock(), EventCounters()
    buf = buffer(clock, counters)
    # The user's first two events, produced at t=10 and t=11, reach the consumer as 2, 1.
    assert offer(buf, 1, 2, "b", at=11.0) == ["b"]
    assert offer(buf, 1, 1, "a", at=10.0) == ["a"]
    assert counters.get("ordering_restarts") == 0
    assert counters.get("ordering_late") == 1
    # The line kept its place: seq 3 follows on at once, with no gap to wait for.
    assert offer(buf, 1, 3, "c", at=12.0) == ["c"]
    assert buf.held == 0
    clock.now = 10.0
    assert buf.expire() == []
    assert counters.get("ordering_gaps") == 0


def test_a_restart_is_recognised_by_seq_one_produced_after_everything_seen() -> None:
    counters = EventCounters()
    buf = buffer(ManualClock(), counters)
    assert offer(buf, 1, 2, "b", at=11.0) == ["b"]
    assert offer(buf, 1, 3, "c", at=12.0) == ["c"]
    # The session restarted at t=20 and counts from 1 again.
    assert offer(buf, 1, 1, "new-a", at=20.0) == ["new-a"]
    assert offer(buf, 1, 2, "new-b", at=21.0) == ["new-b"]
    assert counters.get("ordering_restarts") == 1
