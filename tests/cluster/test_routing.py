"""The router on a real Redis and real listeners: the owner's address is looked up once and
remembered; a remembered address that went stale (the partition moved, the owner is gone)
costs one more look-up, never an error, and never runs the ask twice."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis

from actors import Ask
from yabot.cluster.forwarding import AskForwarder, AskServer, OwnerMoved
from yabot.cluster.ownership import RedisOwnership
from yabot.cluster.routing import AskRouter
from yabot.intake import partition_of
from yabot.sessions.messages import GetWallet, Wallet

KEY = b"k" * 32
PARTITIONS = 4
USER = 5


class LookedUp(RedisOwnership):
    """The real ownership, counting its owner look-ups in Redis."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.look_ups = 0

    def owner_address(self, partition: int) -> str | None:
        self.look_ups += 1
        return super().owner_address(partition)


class Process:
    """What one process has for this: its leases and its listener, whose sessions answer
    with this process's number as the balance (so a reply says who answered)."""

    def __init__(self, url: str, prefix: str, name: str, number: int) -> None:
        #: This process's monotonic clock (a test moves it on to pause the process).
        self.now = 0.0
        self.ownership = LookedUp(redis.Redis.from_url(url, socket_timeout=2), name,
                                  partitions=PARTITIONS, prefix=prefix, ttl=30,
                                  renew_interval=10, safety_margin=1, clock=lambda: self.now)
        self.asked: list[Ask[Any]] = []

        def ask(user_id: int, message: Ask[Any]) -> Wallet:
            self.asked.append(message)
            return Wallet(balance=number, entries=())

        self.server = AskServer("127.0.0.1", KEY, ask,
                                lambda user_id: self.ownership.owns(
                                    partition_of(user_id, PARTITIONS)))
        self.server.start()
        self.ownership.address = self.server.address

    def stop(self) -> None:
        self.server.stop()
        self.ownership.stop()


Processes = Callable[[str, int], Process]


@pytest.fixture
def processes(local_redis: tuple[str, str]) -> Iterator[Processes]:
    url, prefix = local_redis
    made: list[Process] = []

    def build(name: str, number: int) -> Process:
        made.append(Process(url, prefix.rstrip(":"), name, number))
        return made[-1]

    yield build
    for process in made:
        process.stop()


def router_of(process: Process) -> AskRouter:
    return AskRouter(process.ownership, PARTITIONS, AskForwarder(KEY), remember_for=3600)


def test_the_owners_address_is_looked_up_once_for_many_asks(processes: Processes) -> None:
    asker, owner = processes("a", 1), processes("b", 2)
    owner.ownership.tick()  # b holds every lease
    router = router_of(asker)
    replies = [router.forward(USER, GetWallet(), timeout=5) for _ in range(5)]
    assert {reply.balance for reply in replies} == {2}
    assert asker.ownership.look_ups == 1


def test_a_remembered_owner_that_gave_the_partition_away_sends_the_ask_on_once(
    processes: Processes
) -> None:
    asker, old, new = processes("a", 1), processes("b", 2), processes("c", 3)
    old.ownership.tick()
    router = router_of(asker)
    assert router.forward(USER, GetWallet(), timeout=5).balance == 2
    old.ownership.stop()  # b gives its leases back (its listener still answers) ...
    new.ownership.tick()  # ... and c takes them
    assert router.forward(USER, GetWallet(), timeout=5).balance == 3
    assert len(old.asked) == 1  # b ran only the first ask
    assert len(new.asked) == 1
    assert asker.ownership.look_ups == 2


def test_a_remembered_owner_that_is_gone_costs_one_more_look_up(processes: Processes) -> None:
    asker, old, new = processes("a", 1), processes("b", 2), processes("c", 3)
    old.ownership.tick()
    router = router_of(asker)
    assert router.forward(USER, GetWallet(), timeout=5).balance == 2
    old.stop()  # b is gone: nothing listens at its address
    new.ownership.tick()
    assert router.forward(USER, GetWallet(), timeout=5).balance == 3
    assert asker.ownership.look_ups == 2


def test_an_owner_refusing_while_its_lease_still_names_it_is_a_503(processes: Processes
                                                                   ) -> None:
    """The lease names b, but b counts it lapsed (b was paused past its lease on its own
    clock; Redis has not expired it yet): the ask is refused, not sent around in circles."""
    asker, owner = processes("a", 1), processes("b", 2)
    owner.ownership.tick()
    router = router_of(asker)
    assert router.forward(USER, GetWallet(), timeout=5).balance == 2
    owner.now += 60  # past b's lease on b's clock
    with pytest.raises(OwnerMoved) as raised:
        router.forward(USER, GetWallet(), timeout=5)
    assert raised.value.status_code == 503
    assert len(owner.asked) == 1
