from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from sqlalchemy import Connection, Engine, select

from tests.events.support import (
    consuming,
    effects,
    record_effect,
    recorded,
    test_metadata,
)
from tests.support.redis_server import no_retry, stream_entries
from tests.support.waiting import eventually, joined
from yabot.events.counters import EventCounters
from yabot.events.models import UserInteraction
from yabot.events.processor import Handlers, StreamConsumer
from yabot.events.relay import stream_fields
from yabot.settings import EventSettings
from yabot.stores.tables import dead_letters


class Setup:
    def __init__(self, url: str, prefix: str, engine: Engine) -> None:
        self.engine = engine
        self.client = redis.Redis.from_url(url, retry=no_retry())
        self.settings = EventSettings(
            stream=prefix + "events", consumer_group="g", read_block_ms=50,
            retry_base_delay=0.001, retry_max_delay=0.01, handler_retries=2,
            ordering_gap_timeout=0.3, claim_min_idle=0.2, claim_interval=0.1,
        )
        self.counters = EventCounters()
        self.handlers = Handlers()
        self.handlers.on(UserInteraction, record_effect)
        test_metadata.create_all(engine)

    def consumer(self, name: str = "c1") -> StreamConsumer:
        return StreamConsumer(self.client, lambda: self.engine, self.handlers, self.settings,
                              consumer=name, counters=self.counters)

    def add(self, event: UserInteraction) -> None:
        self.client.xadd(self.settings.stream, stream_fields(str(event.event_id), event.to_json()))

    def add_raw(self, fields: dict[str, str]) -> None:
        self.client.xadd(self.settings.stream, fields)  # type: ignore[arg-type]

    def pending(self) -> int:
        return int(self.client.xpending(self.settings.stream, "g")["pending"])

    def dead(self) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(select(dead_letters)).mappings()]


@pytest.fixture
def setup(local_redis: tuple[str, str], engine: Engine) -> Iterator[Setup]:
    url, prefix = local_redis
    s = Setup(url, prefix, engine)
    yield s
    s.client.close()


def tap(user_id: int, seq: int) -> UserInteraction:
    return UserInteraction(user_id=user_id, seq=seq, action="tap")


def test_events_are_handled_in_order_and_acked(setup: Setup) -> None:
    for seq in (1, 2, 3):
        setup.add(tap(1, seq))
    with consuming(setup.consumer()):
        eventually(lambda: len(recorded(setup.engine)) == 3, "3 events handled")
        eventually(lambda: setup.pending() == 0, "every entry acked")
    assert recorded(setup.engine) == [(1, 1), (1, 2), (1, 3)]
    assert setup.counters.get("handled") == 3


def test_duplicate_delivery_has_one_effect(setup: Setup) -> None:
    event = tap(1, 1)
    setup.add(event)
    setup.add(event)
    setup.add(tap(1, 2))
    with consuming(setup.consumer()):
        eventually(lambda: setup.counters.get("handled") == 2, "two distinct events handled")
        eventually(lambda: setup.pending() == 0, "the duplicate acked too")
    assert recorded(setup.engine) == [(1, 1), (1, 2)]
    assert setup.counters.get("duplicates") == 1


def test_failing_handler_is_retried_then_dead_lettered_and_the_consumer_goes_on(
    setup: Setup,
) -> None:
    calls: list[int] = []

    def fussy(event: Any, conn: Connection) -> None:
        calls.append(event.seq)
        if event.seq == 2:
            raise ValueError("seq 2 is cursed")

    setup.handlers.on(UserInteraction, fussy)
    for seq in (1, 2, 3):
        setup.add(tap(5, seq))
    with consuming(setup.consumer()):
        eventually(lambda: len(recorded(setup.engine)) == 2, "events 1 and 3 handled")
        eventually(lambda: setup.pending() == 0, "the dead-lettered entry acked")
    assert recorded(setup.engine) == [(5, 1), (5, 3)]  # seq 2's effect was rolled back
    assert calls.count(2) == 3  # one attempt and two retries
    [dead] = setup.dead()
    assert dead["error"] == "ValueError: seq 2 is cursed"
    assert dead["attempts"] == 3
    assert dead["consumer_group"] == "g"
    [(_, fields)] = stream_entries(setup.client, setup.settings.stream + ":dead")
    assert fields[b"event_id"] == dead["event_id"].encode()
    assert b"cursed" in fields[b"error"]


def test_garbage_on_the_stream_is_dead_lettered_as_unparseable(setup: Setup) -> None:
    setup.add_raw({"body": "this is not json"})
    setup.add_raw({"something": "else"})
    setup.add(tap(1, 1))
    with consuming(setup.consumer()):
        eventually(lambda: recorded(setup.engine) == [(1, 1)], "the valid event handled")
        eventually(lambda: setup.pending() == 0, "garbage acked")
    errors = sorted(d["error"] for d in setup.dead())
    assert len(errors) == 2
    assert errors[0].startswith("InvalidEvent: not a valid event")
    assert errors[1] == "InvalidEvent: stream entry has no body field"
    assert setup.counters.get("unparseable") == 2


def test_out_of_order_events_are_held_then_released_in_seq_order(setup: Setup) -> None:
    for seq in (1, 3, 4, 2):
        setup.add(tap(9, seq))
    with consuming(setup.consumer()):
        eventually(lambda: len(recorded(setup.engine)) == 4, "4 events handled")
    assert recorded(setup.engine) == [(9, 1), (9, 2), (9, 3), (9, 4)]


def test_a_gap_that_stays_open_is_reported_and_skipped(setup: Setup) -> None:
    setup.add(tap(9, 1))
    setup.add(tap(9, 3))
    with consuming(setup.consumer()):
        eventually(lambda: len(recorded(setup.engine)) == 2, "event 3 released after the gap")
    assert recorded(setup.engine) == [(9, 1), (9, 3)]
    assert setup.counters.get("ordering_gaps") == 1


def test_pending_entries_of_a_dead_consumer_are_claimed(setup: Setup) -> None:
    setup.consumer().ensure_group()
    setup.add(tap(2, 1))
    # A consumer reads the entry and dies before acking it.
    setup.client.xreadgroup("g", "dead", {setup.settings.stream: ">"}, count=10)
    assert setup.pending() == 1
    with consuming(setup.consumer("alive")):
        eventually(lambda: recorded(setup.engine) == [(2, 1)], "the orphan handled")
        eventually(lambda: setup.pending() == 0, "the orphan acked")
    assert setup.counters.get("claimed") == 1


def test_a_restarted_consumer_handles_its_own_pending_entries_first(setup: Setup) -> None:
    setup.consumer().ensure_group()
    setup.add(tap(3, 1))
    setup.client.xreadgroup("g", "c1", {setup.settings.stream: ">"}, count=10)  # then crashed
    setup.add(tap(3, 2))
    setup.settings = setup.settings.model_copy(update={"claim_min_idle": 3600.0})
    with consuming(setup.consumer("c1")):
        eventually(lambda: len(recorded(setup.engine)) == 2, "both handled")
    assert recorded(setup.engine) == [(3, 1), (3, 2)]


def test_the_consumer_stops_while_blocked_in_a_read(setup: Setup) -> None:
    stopping = threading.Event()
    consumer = setup.consumer()
    thread = threading.Thread(target=consumer.run, args=(stopping,), daemon=True)
    thread.start()
    eventually(lambda: setup.client.exists(setup.settings.stream) == 1, "group created")
    stopping.set()
    joined(thread, "the consumer stopped")
    assert not thread.is_alive()
    with setup.engine.connect() as conn:
        assert conn.execute(select(effects)).first() is None
