"""Keyed actors on a bounded dispatcher: no thread per key, order per key, fairness, and a
blocked handler that holds one worker only."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from actors import Actor, Ask, KeyedActors, Message, SelfAsk
from actors._dispatcher import Dispatcher
from tests.support.waiting import ASK, eventually, scaled


class Numbered(Message):
    number: int


class Hello(Ask[str]):
    pass


class Hold(Ask[None]):
    pass


class AskMyself(Ask[None]):
    pass


@pytest.fixture
def registries() -> Iterator[list[KeyedActors[Any, Any]]]:
    created: list[KeyedActors[Any, Any]] = []
    yield created
    for registry in created:
        registry.stop_all(timeout=ASK)


class OrderChecker(Actor):
    """Checks that its key's numbers arrive as 0, 1, 2, ... in one shared table."""

    def __init__(self, key: int, seen: list[int], violations: list[tuple[int, int, int]],
                 done: list[int]) -> None:
        super().__init__()
        self._key, self._seen, self._violations, self._done = key, seen, violations, done

    def handle(self, message: Any) -> Any:
        if isinstance(message, Numbered):
            expected = self._seen[self._key]
            if message.number != expected:
                self._violations.append((self._key, expected, message.number))
            self._seen[self._key] = message.number + 1
            self._done.append(1)
            return None
        return super().handle(message)


@pytest.mark.parametrize("keys", [
    10_000,
    # The size: ~30 s on a busy 2-core machine, so it runs with `make soak`.
    pytest.param(100_000, marks=pytest.mark.soak),
])
def test_keys_x_10_messages_from_8_threads_in_order_none_lost_on_a_bounded_pool(
    registries: list[KeyedActors[Any, Any]], keys: int,
) -> None:
    per_key, senders, workers = 10, 8, 8
    seen = [0] * keys
    violations: list[tuple[int, int, int]] = []
    done: list[int] = []  # list.append is atomic: one entry per handled message
    keyed: KeyedActors[int, OrderChecker] = KeyedActors(
        "order", lambda key: OrderChecker(key, seen, violations, done), workers=workers)
    registries.append(keyed)
    threads_before = threading.active_count()
    errors: list[BaseException] = []
    messages = [Numbered(number=n) for n in range(per_key)]

    def send(sender: int) -> None:
        try:
            mine = range(sender, keys, senders)
            for message in messages:  # round by round, so every key's mailbox interleaves
                for key in mine:
                    keyed.tell(key, message)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=send, args=(s,)) for s in range(senders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    eventually(lambda: len(done) == keys * per_key, what="every message handled",
               ceiling=300)
    assert violations == []
    assert seen == [per_key] * keys
    assert len(keyed) == keys  # every key live at once ...
    assert keyed.workers <= workers
    # ... and the process has its pool (and the passivation ticker) on top, no thread per key
    assert threading.active_count() <= threads_before + workers + 1


class Blocker(Actor):
    def __init__(self, release: threading.Event, holding: threading.Event) -> None:
        super().__init__()
        self._release, self._holding = release, holding

    def handle(self, message: Any) -> Any:
        match message:
            case Hold():
                self._holding.set()
                self._release.wait(scaled(60))
                return None
            case Hello():
                return "hello"
        return super().handle(message)


def test_one_key_blocked_on_a_slow_call_while_1000_others_are_served(
    registries: list[KeyedActors[Any, Any]],
) -> None:
    release, holding = threading.Event(), threading.Event()
    keyed: KeyedActors[int, Blocker] = KeyedActors(
        "blocking", lambda _key: Blocker(release, holding), workers=4)
    registries.append(keyed)
    with ThreadPoolExecutor(8) as pool:
        blocked = pool.submit(keyed.ask, 0, Hold(), timeout=scaled(60))
        assert holding.wait(scaled(30))
        try:
            replies = list(pool.map(lambda key: keyed.ask(key, Hello(), timeout=ASK),
                                    range(1, 1001)))
            assert replies == ["hello"] * 1000
            assert not blocked.done()  # still blocked while the others were served
        finally:
            release.set()
        assert blocked.result(scaled(30)) is None


class Recorder(Actor):
    def __init__(self, key: str, log: list[str], gate: threading.Event) -> None:
        super().__init__()
        self._key, self._log, self._gate = key, log, gate

    def handle(self, message: Any) -> Any:
        self._gate.wait(scaled(30))
        self._log.append(self._key)
        return None


def test_a_key_with_a_long_mailbox_yields_to_other_keys_after_a_batch(
    registries: list[KeyedActors[Any, Any]],
) -> None:
    log: list[str] = []
    gate = threading.Event()
    keyed: KeyedActors[str, Recorder] = KeyedActors(
        "fair", lambda key: Recorder(key, log, gate), workers=1, batch=4)
    registries.append(keyed)
    for number in range(100):
        keyed.tell("busy", Numbered(number=number))  # the first holds the one worker
    keyed.tell("quiet", Numbered(number=0))
    gate.set()

    eventually(lambda: len(log) == 101, what="every message handled", ceiling=30)
    assert log.index("quiet") == 4  # after one batch of the busy key, not after all 100


class Starter(Actor):
    def __init__(self, release: threading.Event, started_on: list[threading.Thread],
                 released: list[bool]) -> None:
        super().__init__()
        self._release, self._started_on, self._released = release, started_on, released

    def pre_start(self) -> None:
        self._started_on.append(threading.current_thread())
        self._released.append(self._release.wait(scaled(30)))

    def handle(self, message: Any) -> Any:
        return "hello"


def test_ask_async_to_a_new_key_never_blocks_the_event_loop_on_its_start(
    registries: list[KeyedActors[Any, Any]],
) -> None:
    release = threading.Event()
    started_on: list[threading.Thread] = []
    released: list[bool] = []
    keyed: KeyedActors[int, Starter] = KeyedActors(
        "first-contact", lambda _key: Starter(release, started_on, released))
    registries.append(keyed)

    async def main() -> str:
        reply = asyncio.ensure_future(keyed.ask_async(1, Hello(), timeout=ASK))
        await asyncio.sleep(0)  # the ask is sent; a blocked loop would never come back here
        release.set()  # ... and the slow start would wait for its whole timeout
        return await reply

    assert asyncio.run(main()) == "hello"
    assert released == [True]
    assert started_on[0] is not threading.current_thread()


class SelfAsker(Actor):
    def __init__(self, keyed: list[KeyedActors[int, Any]], key: int) -> None:
        super().__init__()
        self._keyed, self._key = keyed, key

    def handle(self, message: Any) -> Any:
        if isinstance(message, AskMyself):
            self._keyed[0].ask(self._key, Hello(), timeout=1)
            return None
        return "hello"


def test_a_keyed_actor_asking_its_own_key_gets_selfask_not_a_deadlock(
    registries: list[KeyedActors[Any, Any]],
) -> None:
    holder: list[KeyedActors[int, Any]] = []
    keyed: KeyedActors[int, SelfAsker] = KeyedActors(
        "self", lambda key: SelfAsker(holder, key))
    holder.append(keyed)
    registries.append(keyed)
    with pytest.raises(SelfAsk):
        keyed.ask(1, AskMyself(), timeout=ASK)


def test_the_dispatcher_never_runs_more_threads_than_its_bound() -> None:
    ran: list[int] = []
    gate = threading.Event()

    def run(item: int) -> None:
        gate.wait(scaled(30))
        ran.append(item)

    dispatcher: Dispatcher[int] = Dispatcher("bounded", run, workers=3)
    try:
        for item in range(50):
            dispatcher.submit(item)
        assert dispatcher.threads <= 3
        gate.set()
        eventually(lambda: sorted(ran) == list(range(50)), what="every item ran", ceiling=30)
        assert dispatcher.threads <= 3
    finally:
        dispatcher.stop(scaled(10))
    assert dispatcher.threads == 0
