"""KeyedActors snapshots: an idle key's published replies answer equal asks without its
mailbox, and never at the expense of per-key order or read-your-writes."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from actors import Actor, ActorDead, Ask, KeyedActors, Message, Snapshot, metrics
from actors.testkit import crash_on
from tests.support.clock import ManualClock
from tests.support.threads import race
from tests.support.waiting import ASK, DEFAULT_CEILING, eventually, joined, scaled

HANDLED, PUBLISHED = "handled", "snapshot"


class Add(Ask[int]):
    """A write: add one and answer the new total."""


class Incr(Message):
    """A write nobody waits for."""


class Total(Ask[tuple[int, str]]):
    """The total and who answered: the actor (``handled``) or its snapshot."""

    times: int = 1


class Hold(Ask[None]):
    """Keeps the key busy (``gate.held`` set) until the test sets ``gate.release``."""


class Forget(Message):
    """The actor stops publishing until it handles its next `Total`."""


class Crash(Message):
    pass


class Gate:
    def __init__(self) -> None:
        self.held = threading.Event()
        self.release = threading.Event()


class Counter(Actor):
    """Publishes its total as `Total`'s reply, fresh for ``fresh_for`` seconds, with the total
    as its basis (renewable up to ``renewable_for`` seconds after it is published)."""

    def __init__(self, fresh_for: float, gate: Gate, renewable_for: float = 25.0) -> None:
        super().__init__()
        self._fresh_for = fresh_for
        self._renewable_for = renewable_for
        self._gate = gate
        self._total = 0
        self._publishing = True

    def snapshot(self) -> Snapshot | None:
        if not self._publishing:
            return None
        return Snapshot({Total(): (self._total, PUBLISHED)}, self._fresh_for,
                        basis=self._total, renewable_for=self._renewable_for)

    def handle(self, message: Any) -> Any:
        match message:
            case Add() | Incr():
                self._total += 1
                return self._total
            case Total(times=times):
                self._publishing = True
                return self._total * times, HANDLED
            case Hold():
                self._gate.held.set()
                self._gate.release.wait(scaled(DEFAULT_CEILING))
                return None
            case Forget():
                self._publishing = False
                return None
        return super().handle(message)


@pytest.fixture
def gate() -> Iterator[Gate]:
    gate = Gate()
    yield gate
    gate.release.set()  # never leave a worker held


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(1000.0)


@pytest.fixture
def counters(gate: Gate, clock: ManualClock) -> Iterator[KeyedActors[int, Counter]]:
    keyed: KeyedActors[int, Counter] = KeyedActors(
        "counters", lambda key: crash_on(Crash, lambda: Counter(10.0, gate))(),
        idle_timeout=30, clock=clock)
    yield keyed
    gate.release.set()
    keyed.stop_all()


def _total(keyed: KeyedActors[int, Counter], key: int = 1) -> tuple[int, str]:
    return keyed.ask(key, Total(), timeout=ASK)


def _snapshot_replies() -> int:
    count: int = metrics.snapshot().get("Counter", {}).get("snapshot_replies", 0)
    return count


def test_an_idle_key_answers_from_its_snapshot_and_counts_it(
    counters: KeyedActors[int, Counter],
) -> None:
    assert _total(counters) == (0, HANDLED)  # no live key yet: the mailbox starts it
    before = _snapshot_replies()
    assert counters.ask(1, Add(), timeout=ASK) == 1
    assert _total(counters) == (1, PUBLISHED)
    assert asyncio.run(counters.ask_async(1, Total(), timeout=ASK)) == (1, PUBLISHED)
    assert _snapshot_replies() == before + 2
    # Only an ask equal to a published one: this one is handled.
    assert counters.ask(1, Total(times=2), timeout=ASK) == (2, HANDLED)


def test_a_read_never_sees_a_value_older_than_a_write_answered_before_it_was_sent(
    counters: KeyedActors[int, Counter],
) -> None:
    writes, readers = 200, 6
    answered = [0]  # the newest total a write's reply carried
    reads_since_write = [0]
    progress = threading.Condition()
    sources: dict[str, int] = {HANDLED: 0, PUBLISHED: 0}
    stale: list[tuple[int, int]] = []
    done = threading.Event()

    def write() -> None:
        for _ in range(writes):
            total = counters.ask(1, Add(), timeout=ASK)
            with progress:
                answered[0] = total
                reads_since_write[0] = 0
                # Let reads in between writes, so that some find the key idle.
                progress.wait_for(lambda: reads_since_write[0] >= readers,
                                  scaled(DEFAULT_CEILING))
        done.set()

    def read() -> None:
        while not done.is_set():
            with progress:
                floor = answered[0]
            total, source = _total(counters)
            with progress:
                sources[source] += 1
                if total < floor:
                    stale.append((total, floor))
                reads_since_write[0] += 1
                progress.notify_all()

    def work(index: int) -> None:
        write() if index == 0 else read()

    race(readers + 1, work)

    assert stale == []
    assert answered[0] == writes
    assert sources[PUBLISHED] > 0  # the snapshot path was taken (and checked above)


def test_a_read_of_a_busy_key_takes_the_mailbox_behind_what_is_queued(
    counters: KeyedActors[int, Counter], gate: Gate,
) -> None:
    counters.ask(1, Add(), timeout=ASK)
    assert _total(counters) == (1, PUBLISHED)
    holder = threading.Thread(target=lambda: counters.ask(1, Hold(), timeout=ASK))
    holder.start()
    assert gate.held.wait(scaled(DEFAULT_CEILING)), "the key is handling Hold"
    replies: list[tuple[int, str]] = []
    reader = threading.Thread(target=lambda: replies.append(_total(counters)))
    reader.start()  # the key is busy, its mailbox empty: the read queues
    eventually(lambda: counters.status().mailbox_depth == 1, "the read queued")
    counters.tell(1, Incr())  # sent after the read: handled after it
    gate.release.set()
    joined(reader, "the read answered")
    joined(holder, "the hold answered")
    assert replies == [(1, HANDLED)]
    assert _total(counters) == (2, PUBLISHED)


def test_a_read_from_the_writers_own_thread_sees_its_tell(
    counters: KeyedActors[int, Counter],
) -> None:
    counters.ask(1, Add(), timeout=ASK)
    for expected in range(2, 50):
        counters.tell(1, Incr())
        assert _total(counters)[0] == expected


def test_passivation_drops_the_snapshot(
    counters: KeyedActors[int, Counter], clock: ManualClock,
) -> None:
    counters.ask(1, Add(), timeout=ASK)
    assert _total(counters) == (1, PUBLISHED)
    assert counters.passivate(1)
    eventually(lambda: 1 not in counters.live_keys(), "key 1 passivated")
    assert _total(counters) == (0, HANDLED)  # a new incarnation (nothing stored)

    counters.ask(1, Add(), timeout=ASK)
    clock.now += 31
    counters.passivate_idle()  # (or the registry's own ticker, now that the clock moved)
    eventually(lambda: 1 not in counters.live_keys(), "key 1 passivated when idle")
    assert _total(counters) == (0, HANDLED)


def test_a_read_from_the_snapshot_keeps_the_key_from_passivation(
    counters: KeyedActors[int, Counter], clock: ManualClock,
) -> None:
    counters.ask(1, Add(), timeout=ASK)
    clock.now += 8
    assert _total(counters) == (1, PUBLISHED)
    clock.now += 25  # 33 s after the last message handled, 25 s after the last read
    assert counters.passivate_idle() == 0
    assert 1 in counters.live_keys()


def test_a_stale_snapshot_is_not_served(
    counters: KeyedActors[int, Counter], clock: ManualClock,
) -> None:
    counters.ask(1, Add(), timeout=ASK)
    clock.now += 9.5
    assert _total(counters) == (1, PUBLISHED)
    clock.now += 0.5  # fresh for 10 s after the Add
    assert _total(counters) == (1, HANDLED)  # ... which published again
    assert _total(counters) == (1, PUBLISHED)


def test_an_actor_that_stops_publishing_is_asked_again(
    counters: KeyedActors[int, Counter],
) -> None:
    counters.ask(1, Add(), timeout=ASK)
    counters.tell(1, Forget())
    assert _total(counters) == (1, HANDLED)
    assert _total(counters) == (1, PUBLISHED)


def test_a_failure_drops_the_snapshot(counters: KeyedActors[int, Counter]) -> None:
    counters.ask(1, Add(), timeout=ASK)
    counters.tell(1, Crash())
    assert _total(counters) == (0, HANDLED)  # the next incarnation answers


def test_a_stopped_registry_answers_no_read(counters: KeyedActors[int, Counter]) -> None:
    counters.ask(1, Add(), timeout=ASK)
    assert _total(counters) == (1, PUBLISHED)
    counters.stop_all()
    with pytest.raises(ActorDead):
        _total(counters)


def test_published_gives_the_snapshot_reply_only_when_ask_would_and_never_blocks(
    counters: KeyedActors[int, Counter], gate: Gate,
) -> None:
    assert counters.published(1, Total()) is None  # no live key: and none is started
    assert counters.live_keys() == []
    counters.ask(1, Add(), timeout=ASK)
    assert counters.published(1, Total()) == (1, PUBLISHED)
    assert counters.published(1, Total(times=2)) is None  # not an ask it published
    holder = threading.Thread(target=lambda: counters.ask(1, Hold(), timeout=ASK))
    holder.start()
    assert gate.held.wait(scaled(DEFAULT_CEILING)), "the key is handling Hold"
    assert counters.published(1, Total()) is None  # busy: returns at once, nothing sent
    assert counters.status().mailbox_depth == 0
    gate.release.set()
    joined(holder, "the hold answered")


# -- renewal from outside: `expiring` and `renew` ------------------------------------------------


def _renew_expiring(keyed: KeyedActors[int, Counter], within: float, fresh_for: float,
                    source: int) -> list[int]:
    """What a renewer does: check each expiring snapshot's basis against ``source`` (the
    total the store would hold) and renew those that still match; the keys renewed."""
    checked_at = keyed.now()
    return [key for key, snapshot in keyed.expiring(within)
            if snapshot.basis == source and keyed.renew(key, snapshot, checked_at, fresh_for)]


def test_a_renewed_snapshot_is_served_past_its_first_expiry_up_to_its_limit(
    counters: KeyedActors[int, Counter], clock: ManualClock,
) -> None:
    counters.ask(1, Add(), timeout=ASK)  # published at 1000: fresh until 1010, renewable 1025
    clock.now += 4
    assert _renew_expiring(counters, within=5, fresh_for=10, source=1) == []  # not yet
    clock.now += 4
    assert _renew_expiring(counters, within=5, fresh_for=10, source=1) == [1]  # to 1018
    clock.now += 9
    assert _total(counters) == (1, PUBLISHED)
    assert _renew_expiring(counters, within=5, fresh_for=10, source=1) == [1]  # 1025, the cap
    clock.now += 7.5
    assert _total(counters) == (1, PUBLISHED)
    clock.now += 0.5
    assert _total(counters) == (1, HANDLED)  # ... which published again, from 1025


def test_a_snapshot_whose_basis_changed_is_not_renewed_and_expires(
    counters: KeyedActors[int, Counter], clock: ManualClock,
) -> None:
    counters.ask(1, Add(), timeout=ASK)
    clock.now += 8
    assert _renew_expiring(counters, within=5, fresh_for=10, source=2) == []  # source moved on
    clock.now += 2
    assert _total(counters) == (1, HANDLED)


def test_an_expired_snapshot_still_the_latest_can_be_renewed(
    counters: KeyedActors[int, Counter], clock: ManualClock,
) -> None:
    counters.ask(1, Add(), timeout=ASK)
    clock.now += 12  # expired at 1010; nothing asked since, so nothing replaced it
    assert _renew_expiring(counters, within=0, fresh_for=10, source=1) == [1]
    assert _total(counters) == (1, PUBLISHED)


def test_only_the_latest_snapshot_of_an_idle_key_is_renewed(
    counters: KeyedActors[int, Counter], clock: ManualClock, gate: Gate,
) -> None:
    counters.ask(1, Add(), timeout=ASK)
    clock.now += 8
    [(key, first)] = counters.expiring(5)
    counters.ask(1, Add(), timeout=ASK)  # handled: published again
    assert not counters.renew(key, first, counters.now(), 10)
    clock.now += 8
    [(_, second)] = counters.expiring(5)
    holder = threading.Thread(target=lambda: counters.ask(1, Hold(), timeout=ASK))
    holder.start()
    assert gate.held.wait(scaled(DEFAULT_CEILING)), "the key is handling Hold"
    assert counters.expiring(5) == []  # busy: its actor publishes again when done
    assert not counters.renew(1, second, counters.now(), 10)
    gate.release.set()
    joined(holder, "the hold answered")
    assert not counters.renew(2, second, counters.now(), 10)  # no such key


def test_a_snapshot_without_a_basis_is_never_offered_for_renewal(
    clock: ManualClock, gate: Gate,
) -> None:
    class Unsourced(Counter):
        def snapshot(self) -> Snapshot | None:
            return Snapshot({Total(): (0, PUBLISHED)}, 10.0)

    keyed: KeyedActors[int, Counter] = KeyedActors(
        "unsourced", lambda key: Unsourced(10.0, gate), clock=clock)
    try:
        keyed.ask(1, Add(), timeout=ASK)
        clock.now += 20
        assert keyed.expiring(60) == []
    finally:
        keyed.stop_all()


def test_renewal_is_not_a_use_of_the_key(
    counters: KeyedActors[int, Counter], clock: ManualClock,
) -> None:
    counters.ask(1, Add(), timeout=ASK)
    for _ in range(3):  # renewed every 8 s, never read: idle for 32 s by the end
        clock.now += 8
        assert _renew_expiring(counters, within=5, fresh_for=10, source=1) == [1]
    clock.now += 8
    assert counters.passivate_idle() == 1
