"""The outbox relay: every stored event reaches the stream, in order, whatever Redis does."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis
from sqlalchemy import Engine

from tests.support.clock import ManualClock
from tests.support.events import RecordingSink
from tests.support.processes import free_port
from tests.support.redis_server import RedisServer, no_retry, stream_entries
from yabot.events.counters import EventCounters
from yabot.events.models import BaseEvent, UserInteraction, parse_event
from yabot.events.outbox import SqlOutbox
from yabot.events.publisher import connect_redis, stream_health
from yabot.events.relay import DiscardSink, OutboxRelay, RedisStreamSink
from yabot.health import HealthStatus
from yabot.settings import EventSettings
from yabot.stores.engine import make_engine
from yabot.stores.outbox import OutboxRecord
from yabot.stores.retry import RetryPolicy
from yabot.stores.tables import metadata


def event_settings(stream: str) -> EventSettings:
    return EventSettings(stream=stream, retry_base_delay=0.001, retry_max_delay=0.01,
                         replay_batch=7)


def store(engine: Engine, stream: str, user_id: int, count: int, start: int = 1) -> None:
    """Events as the stores write them: rows of the outbox, in order."""
    SqlOutbox(lambda: engine).append_records([
        OutboxRecord(str(event.event_id), stream, event.to_json())
        for event in (UserInteraction(user_id=user_id, seq=seq, action="tap")
                      for seq in range(start, start + count))
    ])


def relay_for(url: str, engine: Engine, stream: str, counters: EventCounters | None = None,
              clock: ManualClock | None = None) -> OutboxRelay:
    settings = event_settings(stream)
    return OutboxRelay(SqlOutbox(lambda: engine),
                       RedisStreamSink(connect_redis(url, settings), settings), settings,
                       counters=counters or EventCounters(), clock=clock or ManualClock())


def stream_seqs(client: redis.Redis, stream: str) -> list[int]:
    return [parse_event(fields[b"body"]).seq for _, fields in stream_entries(client, stream)]


def dead_url() -> str:
    return f"redis://127.0.0.1:{free_port()}/0"


def test_the_relay_sends_the_outbox_to_the_stream_in_order_and_empties_it(
    local_redis: tuple[str, str], engine: Engine
) -> None:
    url, prefix = local_redis
    stream = prefix + "events"
    store(engine, stream, 7, 20)
    counters = EventCounters()

    assert relay_for(url, engine, stream, counters).drain() == 20

    client = redis.Redis.from_url(url, retry=no_retry())
    assert stream_seqs(client, stream) == list(range(1, 21))
    assert SqlOutbox(lambda: engine).count() == 0
    assert counters.get("published") == 20


def test_an_unreachable_redis_keeps_the_rows_and_opens_the_breaker(engine: Engine) -> None:
    counters = EventCounters()
    clock = ManualClock()
    relay = relay_for(dead_url(), engine, "events", counters, clock)
    store(engine, "events", 1, 3)

    assert relay.drain() == 0
    assert relay.breaker_open
    assert SqlOutbox(lambda: engine).count() == 3
    assert counters.get("publish_failures") == 1
    # While the breaker is open the relay does not even try: no request-like cost per wake.
    assert relay.drain() == 0
    assert counters.get("publish_failures") == 1
    clock.now += 1.0
    assert not relay.breaker_open
    health = stream_health(None, event_settings("events"), 3, False)
    assert health.status is HealthStatus.PASS  # no Redis configured: nothing to wait for


def test_redis_killed_between_batches_loses_nothing_and_keeps_order(
    redis_server: RedisServer, engine: Engine
) -> None:
    clock = ManualClock()
    relay = relay_for(redis_server.url, engine, "events", clock=clock)
    client = redis_server.client()
    store(engine, "events", 7, 3)
    assert relay.drain() == 3

    redis_server.kill()
    store(engine, "events", 7, 10, start=4)
    assert relay.drain() == 0
    redis_server.start()
    store(engine, "events", 7, 2, start=14)
    clock.now += 1.0  # past the breaker's backoff

    assert relay.drain() == 12
    assert stream_seqs(client, "events") == list(range(1, 16))
    assert SqlOutbox(lambda: engine).count() == 0


def test_rows_a_crashed_process_left_are_sent_by_the_next_relay(
    local_redis: tuple[str, str], tmp_path: Path
) -> None:
    url, prefix = local_redis
    path = f"sqlite:///{tmp_path / 'crash.sqlite3'}"
    first_engine = make_engine(path)
    metadata.create_all(first_engine)
    store(first_engine, prefix + "events", 3, 20)
    first_engine.dispose()  # the process is gone; only the file remains

    engine = make_engine(path)
    assert relay_for(url, engine, prefix + "events").drain() == 20

    client = redis.Redis.from_url(url, retry=no_retry())
    assert stream_seqs(client, prefix + "events") == list(range(1, 21))
    engine.dispose()


def test_without_redis_rows_are_discarded_and_counted(engine: Engine) -> None:
    counters = EventCounters()
    relay = OutboxRelay(SqlOutbox(lambda: engine), DiscardSink(counters),
                        event_settings("events"), counters=counters)
    store(engine, "events", 1, 4)

    assert relay.drain() == 4
    assert counters.get("dropped_no_redis") == 4
    assert SqlOutbox(lambda: engine).count() == 0


def test_a_stop_lets_the_batch_being_sent_finish_and_leaves_the_rest_to_the_next_relay(
    engine: Engine
) -> None:
    store(engine, "events", 1, 21)  # three batches of `replay_batch` (7)
    settings = event_settings("events")
    outbox = SqlOutbox(lambda: engine)
    sent: list[int] = []

    def record_then_stop(event: BaseEvent) -> None:  # asked to stop while it sends
        sent.append(event.seq)
        relay.stop()

    relay = OutboxRelay(outbox, RecordingSink(record_then_stop), settings,
                        counters=EventCounters())

    assert relay.drain() == 7
    assert sent == list(range(1, 8))
    assert outbox.count() == 14

    after_restart: list[int] = []
    assert OutboxRelay(outbox, RecordingSink(lambda event: after_restart.append(event.seq)),
                       settings, counters=EventCounters()).drain() == 14
    assert after_restart == list(range(8, 22))
    assert outbox.count() == 0


@pytest.mark.parametrize("attempt", [1, 2, 5, 30])
def test_backoff_grows_exponentially_under_its_cap_with_jitter(attempt: int) -> None:
    policy = RetryPolicy(base_delay=0.1, max_delay=1.0)
    ceiling = min(1.0, 0.1 * 2 ** (attempt - 1))
    assert policy.ceiling(attempt) == pytest.approx(ceiling)
    assert policy.delay(attempt, rng=lambda: 1.0) == pytest.approx(ceiling)
    assert policy.delay(attempt, rng=lambda: 0.0) == 0.0
