"""The embedded default: without Redis the outbox feeds the consumer groups in-process."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Connection, Engine, func, select
from sqlalchemy.exc import OperationalError

from tests.events.support import effects, record_effect, recorded, test_metadata
from yabot.events.counters import EventCounters
from yabot.events.groups import ConsumerGroup, Handlers
from yabot.events.local import LocalDelivery
from yabot.events.models import UserInteraction
from yabot.events.outbox import SqlOutbox
from yabot.events.relay import OutboxRelay
from yabot.settings import EventSettings
from yabot.stores.tables import dead_letters, processed_events

SETTINGS = EventSettings(retry_base_delay=0.001, retry_max_delay=0.001, handler_retries=2,
                         replay_batch=3)


def publish(outbox: SqlOutbox, user_id: int, seq: int) -> str:
    event = UserInteraction(user_id=user_id, seq=seq, action="start")
    outbox.append(str(event.event_id), "local", event.to_json())
    return str(event.event_id)


def count(engine: Engine, table: Any, **where: str) -> int:
    query = select(func.count()).select_from(table)
    for column, value in where.items():
        query = query.where(table.c[column] == value)
    with engine.connect() as conn:
        return int(conn.execute(query).scalar_one())


def test_every_group_sees_every_event_in_publish_order_once(engine: Engine) -> None:
    test_metadata.create_all(engine)
    outbox = SqlOutbox(lambda: engine)
    seen_by_second: list[tuple[int, int]] = []
    first, second = Handlers(), Handlers()
    first.on(UserInteraction, record_effect)
    second.on(UserInteraction, lambda e, conn: seen_by_second.append((e.user_id, e.seq)))
    groups = [ConsumerGroup("first", first), ConsumerGroup("second", second)]
    relay = OutboxRelay(outbox, LocalDelivery(lambda: engine, groups, SETTINGS), SETTINGS)
    for seq in range(1, 6):
        publish(outbox, 1, seq)
    publish(outbox, 2, 1)

    assert relay.drain() == 6
    assert relay.drain() == 0

    expected = [(1, 1), (1, 2), (1, 3), (1, 4), (1, 5), (2, 1)]
    assert recorded(engine) == expected
    assert seen_by_second == expected
    assert outbox.count() == 0
    assert count(engine, processed_events, consumer_group="second") == 6


class FlakyStore:
    """The store fails (as an unreachable database would) on the n-th transaction."""

    def __init__(self, engine: Engine, fail_on: int) -> None:
        self.engine, self.fail_on, self.calls = engine, fail_on, 0

    def __call__(self) -> Engine:
        self.calls += 1
        if self.calls == self.fail_on:
            raise OperationalError("begin", {}, Exception("database is gone"))
        return self.engine


def test_a_store_outage_mid_batch_keeps_the_rows_and_nothing_runs_twice(engine: Engine) -> None:
    test_metadata.create_all(engine)
    outbox = SqlOutbox(lambda: engine)
    handlers = Handlers()
    handlers.on(UserInteraction, record_effect)
    store = FlakyStore(engine, fail_on=3)
    settings = SETTINGS.model_copy(update={"replay_batch": 10})
    relay = OutboxRelay(outbox, LocalDelivery(store, [ConsumerGroup("g", handlers)], settings),
                        settings)
    for seq in range(1, 5):
        publish(outbox, 1, seq)

    assert relay.drain() == 0  # the store failed on the third event's transaction
    assert outbox.count() == 4  # nothing removed: the batch was not delivered as a whole
    assert recorded(engine) == [(1, 1), (1, 2)]

    assert relay.drain(force=True) == 4
    assert recorded(engine) == [(1, 1), (1, 2), (1, 3), (1, 4)]


def test_a_failing_handler_is_dead_lettered_for_its_group_only(engine: Engine) -> None:
    test_metadata.create_all(engine)
    outbox = SqlOutbox(lambda: engine)
    broken, fine = Handlers(), Handlers()
    attempts: list[int] = []

    def explode(event: Any, conn: Connection) -> None:
        attempts.append(event.seq)
        raise ValueError("a bug in the handler")

    broken.on(UserInteraction, explode)
    fine.on(UserInteraction, record_effect)
    counters = EventCounters()
    delivery = LocalDelivery(lambda: engine, [ConsumerGroup("broken", broken),
                                              ConsumerGroup("fine", fine)], SETTINGS,
                             counters=counters, sleep=lambda s: None)
    event_id = publish(outbox, 3, 1)
    outbox.append(str(uuid.uuid4()), "local", "{not json")

    assert OutboxRelay(outbox, delivery, SETTINGS).drain() == 2

    assert attempts == [1, 1, 1]  # first try + handler_retries
    assert recorded(engine) == [(3, 1)]
    with engine.connect() as conn:
        rows = conn.execute(select(dead_letters.c.consumer_group, dead_letters.c.event_id,
                                   dead_letters.c.attempts).order_by(dead_letters.c.id)).all()
    assert tuple(rows[0]) == ("broken", event_id, 3)
    assert rows[1][0] == "(unreadable)"
    assert count(engine, effects) == 1
    assert counters.get("dead_lettered") == 2
