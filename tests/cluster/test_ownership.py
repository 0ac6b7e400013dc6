"""Partition leases on a real Redis: one owner per partition, fair shares, takeover with a
growing fencing token, and a process that cannot renew owning nothing before anyone else
can take its partitions."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
import redis

from tests.support.waiting import eventually
from yabot.cluster.ownership import RedisOwnership, fair_share

PARTITIONS = 8
TTL, RENEW, MARGIN = 1.5, 0.3, 0.3

Factory = Callable[[str], RedisOwnership]


@pytest.fixture
def ownerships(local_redis: tuple[str, str]) -> Iterator[Factory]:
    url, prefix = local_redis
    made: list[RedisOwnership] = []

    def build(name: str) -> RedisOwnership:
        client = redis.Redis.from_url(url, socket_timeout=2)
        ownership = RedisOwnership(
            client, name, partitions=PARTITIONS, prefix=prefix.rstrip(":"), ttl=TTL,
            renew_interval=RENEW, safety_margin=MARGIN,
        )
        made.append(ownership)
        return ownership

    yield build
    for ownership in made:
        ownership.stop()


def test_fair_shares_add_up_to_every_partition_once() -> None:
    for count in range(1, 6):
        members = [f"m{i}" for i in range(count)]
        shares = [fair_share(PARTITIONS, members, m) for m in members]
        assert sum(shares) == PARTITIONS
        assert max(shares) - min(shares) <= 1
    assert fair_share(PARTITIONS, ["a"], "b") == 0


def test_processes_split_the_partitions_fairly_and_never_share_one(ownerships: Factory
                                                                    ) -> None:
    a, b = ownerships("a"), ownerships("b")
    a.start()
    assert a.owned() == list(range(PARTITIONS))  # alone: everything, at once
    b.start()
    eventually(lambda: len(a.owned()) == len(b.owned()) == PARTITIONS // 2,
               "b joined and got its share", 30)
    assert set(a.owned()).isdisjoint(b.owned())
    assert set(a.owned()) | set(b.owned()) == set(range(PARTITIONS))


def test_a_process_that_leaves_hands_over_with_a_greater_fencing_token(ownerships: Factory
                                                                        ) -> None:
    a, b = ownerships("a"), ownerships("b")
    a.start()
    b.start()
    eventually(lambda: len(b.owned()) == PARTITIONS // 2, "shares settled", 30)
    before = a.tokens()
    a.stop()
    eventually(lambda: b.owned() == list(range(PARTITIONS)), "b owns everything", 30)
    after = b.tokens()
    assert all(after[p] > token for p, token in before.items())


def test_a_process_that_cannot_renew_owns_nothing_before_another_may_take_over(
    ownerships: Factory
) -> None:
    a, b = ownerships("a"), ownerships("b")
    a.tick()  # a takes everything once and then never renews (paused, cut off)
    assert a.owned() == list(range(PARTITIONS))
    b.start()
    seen_while_a_owned: list[bool] = []

    def b_took_over() -> bool:
        taken = bool(b.owned())
        if taken:
            seen_while_a_owned.append(bool(a.owned()))
        return taken

    eventually(b_took_over, "b took over a's partitions", 30)
    assert seen_while_a_owned == [False]  # a had stopped counting them as its own first
    eventually(lambda: b.owned() == list(range(PARTITIONS)), "b owns everything", 30)
    assert a.owned() == []
    assert not any(a.owns(p) for p in range(PARTITIONS))
