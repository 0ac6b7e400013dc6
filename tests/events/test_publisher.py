from __future__ import annotations

from pathlib import Path

import pytest
import redis
from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError

from tests.support.processes import free_port
from tests.support.redis_server import RedisServer, no_retry, stream_entries
from yabot.errors import StoreUnavailable
from yabot.events.counters import EventCounters
from yabot.events.models import UserInteraction, parse_event
from yabot.events.outbox import SqlOutbox
from yabot.events.publisher import Outcome, StreamPublisher, connect_redis
from yabot.health import HealthStatus
from yabot.settings import EventSettings
from yabot.stores.engine import make_engine
from yabot.stores.tables import metadata


def event_settings(stream: str) -> EventSettings:
    return EventSettings(stream=stream, retry_base_delay=0.001, retry_max_delay=0.01)


def publisher_for(url: str, engine: Engine, stream: str, counters: EventCounters | None = None
                  ) -> StreamPublisher:
    settings = event_settings(stream)
    return StreamPublisher(
        connect_redis(url, settings), SqlOutbox(lambda: engine), settings,
        counters=counters or EventCounters(),
    )


def events(user_id: int, count: int, start: int = 1) -> list[UserInteraction]:
    return [UserInteraction(user_id=user_id, seq=seq, action="tap")
            for seq in range(start, start + count)]


def stream_seqs(client: redis.Redis, stream: str) -> list[int]:
    return [parse_event(fields[b"body"]).seq for _, fields in stream_entries(client, stream)]


def dead_url() -> str:
    return f"redis://127.0.0.1:{free_port()}/0"


def test_publish_appends_the_event_to_the_stream(
    local_redis: tuple[str, str], engine: Engine
) -> None:
    url, prefix = local_redis
    publisher = publisher_for(url, engine, prefix + "events")
    event = UserInteraction(user_id=1, seq=1, action="start")

    assert publisher.publish(event) is Outcome.SENT

    client = redis.Redis.from_url(url, retry=no_retry())
    [(_, fields)] = stream_entries(client, prefix + "events")
    assert fields[b"event_id"] == str(event.event_id).encode()
    assert parse_event(fields[b"body"]) == event
    assert publisher.health().status is HealthStatus.PASS


def test_unreachable_redis_sends_events_to_the_outbox_without_raising(engine: Engine) -> None:
    counters = EventCounters()
    publisher = publisher_for(dead_url(), engine, "events", counters)

    outcomes = [publisher.publish(e) for e in events(1, 3)]

    assert outcomes == [Outcome.OUTBOX] * 3
    assert SqlOutbox(lambda: engine).count() == 3
    # Only the first event paid for the retries; the others went behind it at once.
    assert counters.get("publish_failures") == 1
    assert counters.get("publish_retries") == 2
    health = publisher.health()
    assert health.status is HealthStatus.WARN
    assert health.details["outbox"] == 3


def test_outbox_is_replayed_in_order_and_new_events_wait_behind_it(
    redis_server: RedisServer, engine: Engine
) -> None:
    publisher = publisher_for(redis_server.url, engine, "events")
    client = redis_server.client()
    batch = events(7, 10)
    assert publisher.publish(batch[0]) is Outcome.SENT

    redis_server.kill()
    assert [publisher.publish(e) for e in batch[1:6]] == [Outcome.OUTBOX] * 5
    redis_server.start()
    # Redis answers again, but the outbox is not empty: these must queue behind it.
    assert [publisher.publish(e) for e in batch[6:8]] == [Outcome.OUTBOX] * 2

    assert publisher.replay() == 7
    assert not publisher.has_backlog
    assert [publisher.publish(e) for e in batch[8:]] == [Outcome.SENT] * 2
    assert stream_seqs(client, "events") == list(range(1, 11))
    assert SqlOutbox(lambda: engine).count() == 0


def test_events_left_in_the_outbox_by_a_crash_are_replayed_by_the_next_bus(
    local_redis: tuple[str, str], tmp_path: Path
) -> None:
    url, prefix = local_redis
    path = f"sqlite:///{tmp_path / 'crash.sqlite3'}"
    first_engine = make_engine(path)
    metadata.create_all(first_engine)
    crashed = publisher_for(dead_url(), first_engine, prefix + "events")
    for event in events(3, 20):
        crashed.publish(event)
    first_engine.dispose()  # the process is gone; only the file remains

    engine = make_engine(path)
    successor = publisher_for(url, engine, prefix + "events")
    assert successor.recount_backlog() == 20
    assert successor.replay() == 20

    client = redis.Redis.from_url(url, retry=no_retry())
    assert stream_seqs(client, prefix + "events") == list(range(1, 21))
    assert SqlOutbox(lambda: engine).count() == 0
    engine.dispose()


def test_without_redis_events_go_to_the_outbox_for_in_process_delivery(engine: Engine) -> None:
    counters = EventCounters()
    woken: list[bool] = []
    publisher = StreamPublisher(None, SqlOutbox(lambda: engine), event_settings("events"),
                                counters=counters, on_local=lambda: woken.append(True))

    assert publisher.publish(events(1, 1)[0]) is Outcome.LOCAL
    assert counters.get("outboxed_local") == 1
    assert counters.get("dropped_no_redis") == 0
    assert SqlOutbox(lambda: engine).count() == 1
    assert woken == [True]
    assert publisher.health().status is HealthStatus.PASS


def test_with_redis_and_sql_both_down_the_event_is_lost_but_publish_does_not_raise() -> None:
    def no_engine() -> Engine:
        raise StoreUnavailable("the SQL store is not running")

    counters = EventCounters()
    settings = event_settings("events")
    publisher = StreamPublisher(connect_redis(dead_url(), settings), SqlOutbox(no_engine),
                                settings, counters=counters)

    assert publisher.publish(events(1, 1)[0]) is Outcome.LOST
    assert counters.get("lost") == 1
    assert publisher.health().status is HealthStatus.FAIL


@pytest.mark.parametrize("attempt", [1, 2, 5, 30])
def test_backoff_grows_exponentially_under_its_cap_with_jitter(attempt: int) -> None:
    from yabot.events.backoff import Backoff

    backoff = Backoff(base=0.1, cap=1.0)
    ceiling = min(1.0, 0.1 * 2 ** (attempt - 1))
    assert backoff.delay(attempt, rng=lambda: 1.0) == pytest.approx(ceiling)
    assert backoff.delay(attempt, rng=lambda: 0.0) == 0.0


class LockedOnce(SqlOutbox):
    """SQLite's "database is locked" once, as under a long competing write."""

    def __init__(self, engine: Engine) -> None:
        super().__init__(lambda: engine)
        self.failed = False

    def append(self, event_id: str, stream: str, body: str) -> None:
        if not self.failed:
            self.failed = True
            raise OperationalError("INSERT", {}, Exception("database is locked"))
        super().append(event_id, stream, body)


def test_a_locked_outbox_is_retried_before_the_event_counts_as_lost(engine: Engine) -> None:
    counters = EventCounters()
    settings = event_settings("events")
    publisher = StreamPublisher(connect_redis(dead_url(), settings), LockedOnce(engine),
                                settings, counters=counters)

    assert publisher.publish(events(1, 1)[0]) is Outcome.OUTBOX
    assert counters.get("outbox_retries") == 1
    assert counters.get("lost") == 0
    assert SqlOutbox(lambda: engine).count() == 1
