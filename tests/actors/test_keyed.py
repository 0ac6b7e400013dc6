"""KeyedActors: one actor per key, passivation, LRU cap, per-key order, failure isolation."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pykka
import pytest

from actors import (
    Actor,
    ActorDead,
    Ask,
    KeyedActors,
    Message,
    Overloaded,
    Supervisor,
    metrics,
)
from actors.testkit import crash_on
from tests.support.actors import actor_kit
from tests.support.clock import ManualClock
from tests.support.threads import race
from tests.support.waiting import ASK, DEFAULT_CEILING, eventually, joined, scaled


class Append(Message):
    value: int


class Log(Ask[tuple[int, ...]]):
    pass


class Block(Ask[None]):
    """Holds the actor until the test sets the event it was built with."""


class Crash(Message):
    pass



class Journal:
    """A stand-in for a store: each key's log, loaded on start and saved on stop."""

    def __init__(self) -> None:
        self.logs: dict[int, tuple[int, ...]] = {}
        self.incarnations: dict[int, int] = {}
        self.stopped: list[int] = []
        self.lock = threading.Lock()
        self.release_blocked = threading.Event()


class Appender(Actor):
    """Keeps its key's log in memory between `pre_start` (load) and `post_stop` (save)."""

    def __init__(
        self, key: int, journal: Journal, release_stop: threading.Event | None = None
    ) -> None:
        super().__init__()
        self._key = key
        self._journal = journal
        self._release_stop = release_stop
        self._log: list[int] = []

    def pre_start(self) -> None:
        with self._journal.lock:
            self._log = list(self._journal.logs.get(self._key, ()))
            self._journal.incarnations[self._key] = self._journal.incarnations.get(self._key, 0) + 1

    def post_stop(self) -> None:
        if self._release_stop is not None:
            # A slow save, to race the next message against.
            self._release_stop.wait(scaled(DEFAULT_CEILING))
        with self._journal.lock:
            self._journal.logs[self._key] = tuple(self._log)
            self._journal.stopped.append(self._key)

    def handle(self, message: Any) -> Any:
        match message:
            case Append(value=value):
                self._log.append(value)
                return None
            case Log():
                return tuple(self._log)
            case Block():
                self._journal.release_blocked.wait(scaled(DEFAULT_CEILING))
                return None
        return super().handle(message)


@pytest.fixture
def journal() -> Journal:
    return Journal()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(1000.0)


@pytest.fixture
def registries() -> Iterator[list[KeyedActors[Any, Any]]]:
    """Registries a test creates; all stopped afterwards."""
    created: list[KeyedActors[Any, Any]] = []
    yield created
    for registry in created:
        registry.stop_all()


def appenders(
    registries: list[KeyedActors[Any, Any]], journal: Journal, **options: Any
) -> KeyedActors[int, Appender]:
    keyed: KeyedActors[int, Appender] = KeyedActors(
        "appenders", lambda key: crash_on(Crash, lambda: Appender(key, journal))(), **options
    )
    registries.append(keyed)
    return keyed


def test_one_actor_per_key_started_on_first_message(
    registries: list[KeyedActors[Any, Any]], journal: Journal
) -> None:
    keyed = appenders(registries, journal)

    keyed.tell(1, Append(value=10))
    keyed.tell(2, Append(value=20))
    keyed.tell(1, Append(value=11))

    assert keyed.ask(1, Log(), timeout=ASK) == (10, 11)
    assert keyed.ask(2, Log(), timeout=ASK) == (20,)
    assert journal.incarnations == {1: 1, 2: 1}
    assert len(keyed) == 2


def test_idle_actor_is_passivated_and_the_next_message_resumes_from_saved_state(
    registries: list[KeyedActors[Any, Any]], journal: Journal, clock: ManualClock
) -> None:
    keyed = appenders(registries, journal, idle_timeout=30, clock=clock)
    keyed.tell(1, Append(value=1))
    assert keyed.ask(1, Log(), timeout=ASK) == (1,)

    clock.now += 10
    assert keyed.passivate_idle() == 0  # not idle long enough
    clock.now += 25
    assert keyed.passivate_idle() == 1
    eventually(lambda: journal.stopped == [1], "key 1 saved its state on passivation")

    assert keyed.ask(1, Log(), timeout=ASK) == (1,)  # a new incarnation, loaded from the journal
    assert journal.incarnations[1] == 2


def test_a_message_arriving_while_its_key_is_passivating_is_neither_lost_nor_reordered(
    registries: list[KeyedActors[Any, Any]], journal: Journal, clock: ManualClock
) -> None:
    release_stop = threading.Event()
    keyed: KeyedActors[int, Appender] = KeyedActors(
        "slow-savers", lambda key: Appender(key, journal, release_stop),
        idle_timeout=1, clock=clock,
    )
    registries.append(keyed)
    for value in range(5):
        keyed.tell(7, Append(value=value))
    keyed.ask(7, Log(), timeout=ASK)
    clock.now += 2
    assert keyed.passivate_idle() == 1  # the old incarnation is now stuck in post_stop

    for value in range(5, 10):
        keyed.tell(7, Append(value=value))  # go to a new incarnation that must wait
    release_stop.set()

    assert keyed.ask(7, Log(), timeout=ASK) == tuple(range(10))
    assert journal.incarnations[7] == 2


def test_at_the_cap_the_least_recently_used_idle_actor_is_evicted(
    registries: list[KeyedActors[Any, Any]], journal: Journal
) -> None:
    keyed = appenders(registries, journal, max_live=2)
    keyed.tell(1, Append(value=1))
    keyed.tell(2, Append(value=2))
    keyed.ask(2, Log(), timeout=ASK)
    keyed.ask(1, Log(), timeout=ASK)  # key 1 is now more recent than key 2; both are idle

    keyed.tell(3, Append(value=3))

    assert keyed.live_keys() == [1, 3]
    assert len(keyed) <= 2
    eventually(lambda: journal.stopped == [2], "key 2 was evicted and saved")
    assert keyed.ask(2, Log(), timeout=ASK) == (2,)  # back, evicting key 1 (now the LRU)
    assert keyed.live_keys() == [3, 2]


def test_at_the_cap_with_every_actor_busy_a_new_key_is_refused(
    registries: list[KeyedActors[Any, Any]], journal: Journal
) -> None:
    keyed = appenders(registries, journal, max_live=1, start_timeout=0.2)
    busy = threading.Thread(target=keyed.ask, args=(1, Block()), kwargs={"timeout": ASK})
    busy.start()
    eventually(lambda: journal.incarnations.get(1) == 1, "key 1 started and busy")
    try:
        with pytest.raises(Overloaded):
            keyed.tell(2, Append(value=2))
    finally:
        journal.release_blocked.set()
        busy.join()
    assert 2 not in journal.incarnations
    keyed.tell(2, Append(value=2))  # key 1 is idle again, so it can be evicted now
    assert keyed.ask(2, Log(), timeout=ASK) == (2,)


def test_a_crash_affects_only_its_key_and_the_next_message_starts_it_afresh(
    registries: list[KeyedActors[Any, Any]], journal: Journal
) -> None:
    keyed = appenders(registries, journal)
    keyed.tell(1, Append(value=1))
    keyed.tell(2, Append(value=2))
    keyed.ask(1, Log(), timeout=ASK)

    keyed.tell(1, Crash())

    eventually(lambda: journal.stopped == [1], "key 1 died (post_stop still saves)")
    assert keyed.ask(2, Log(), timeout=ASK) == (2,)
    assert keyed.ask(1, Log(), timeout=ASK) == (1,)
    assert journal.incarnations == {1: 2, 2: 1}


def test_keys_failing_too_often_fail_the_keeper_and_its_supervisor_restarts_it(
    registries: list[KeyedActors[Any, Any]], journal: Journal
) -> None:
    keyed = appenders(registries, journal, max_failures=1, period=60)
    with actor_kit() as kit:
        sup = Supervisor("s", [keyed.child_spec()])
        kit.spawn(lambda: sup)
        keeper = sup.child("appenders")
        keyed.tell(1, Append(value=1))
        keyed.tell(2, Append(value=2))

        keyed.tell(1, Crash())
        keyed.tell(2, Crash())  # the second failure within the period exceeds the intensity

        eventually(lambda: sup.child("appenders") not in (None, keeper), "keeper restarted")
        # The restart stopped every key and reopened the registry: it serves again.
        keyed.tell(3, Append(value=3))
        assert keyed.ask(3, Log(), timeout=ASK) == (3,)


def test_a_stopped_registry_refuses_messages(
    registries: list[KeyedActors[Any, Any]], journal: Journal
) -> None:
    keyed = appenders(registries, journal)
    keyed.tell(1, Append(value=1))
    keyed.stop_all()
    assert journal.stopped == [1]
    with pytest.raises(ActorDead):
        keyed.tell(1, Append(value=2))


def test_order_holds_under_load_with_passivation_and_a_cap(
    registries: list[KeyedActors[Any, Any]], journal: Journal
) -> None:
    keyed = appenders(registries, journal, idle_timeout=0.001, max_live=8)
    keys_per_thread, messages_per_key, threads = 25, 20, 4

    def send(thread: int) -> None:
        keys = range(thread * keys_per_thread, (thread + 1) * keys_per_thread)
        for value in range(messages_per_key):
            for key in keys:
                keyed.tell(key, Append(value=value))

    race(threads, send)  # fails with any thread's error
    for key in range(keys_per_thread * threads):
        assert keyed.ask(key, Log(), timeout=ASK) == tuple(range(messages_per_key)), key
    assert max(journal.incarnations.values()) > 1, "the cap forced passivation"


def test_crash_on_via_ask_returns_the_error_and_the_actor_lives(
    registries: list[KeyedActors[Any, Any]], journal: Journal
) -> None:
    class CrashAsk(Ask[None]):
        pass

    keyed: KeyedActors[int, Appender] = KeyedActors(
        "ask-crash", lambda key: crash_on(CrashAsk, lambda: Appender(key, journal))()
    )
    registries.append(keyed)
    keyed.tell(1, Append(value=1))
    with pytest.raises(RuntimeError, match="crashed on CrashAsk"):
        keyed.ask(1, CrashAsk(), timeout=ASK)
    assert keyed.ask(1, Log(), timeout=ASK) == (1,)
    assert journal.incarnations == {1: 1}


def test_keyed_actors_stay_out_of_pykkas_registry_and_their_mailboxes_are_counted(
    registries: list[KeyedActors[Any, Any]], journal: Journal
) -> None:
    keyed = appenders(registries, journal)
    keyed.ask(1, Log(), timeout=ASK)
    keyed.ask(2, Log(), timeout=ASK)
    assert set(keyed.live_refs()).isdisjoint(pykka.ActorRegistry.get_all())

    held = threading.Thread(target=lambda: keyed.ask(1, Block(), timeout=ASK))
    held.start()
    for value in range(3):
        keyed.tell(1, Append(value=value))

    def depth() -> object:
        return metrics.snapshot().get("Appender", {}).get("mailbox_depth")

    eventually(lambda: depth() == 3, "three messages waiting behind the block")
    journal.release_blocked.set()
    joined(held, "the blocked ask answered")
    eventually(lambda: depth() == 0, "the mailbox drained")
    assert keyed.ask(1, Log(), timeout=ASK) == (0, 1, 2)
