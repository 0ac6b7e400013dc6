"""The bus and the processor under their supervisor, against a Redis that gets killed."""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine

from actors import ask, spawn
from tests.events.support import record_effect, recorded, test_metadata
from tests.support.redis_server import RedisServer, stream_entries
from tests.support.settings import SettingsFactory
from tests.support.waiting import ASK, DEFAULT_CEILING, eventually, joined, scaled
from yabot.events.bus import EventBus, Events, GetBusHealth, ReplayOutbox
from yabot.events.counters import event_counters
from yabot.events.models import UserInteraction, parse_event
from yabot.events.outbox import SqlOutbox
from yabot.events.processor import Handler, Handlers
from yabot.events.supervisor import events_supervisor
from yabot.health import HealthStatus
from yabot.settings import Settings
from yabot.stores.handles import RelationalRepositories, Stores
from yabot.stores.sql import SqlSubscriptions, SqlUserProfiles, sql_guard
from yabot.stores.tables import dead_letters

USERS = 10
PER_USER = 100
STREAM = "yabot:events"  # the default; each test has its own redis-server


@pytest.fixture
def stores(engine: Engine) -> Stores:
    stores = Stores()
    stores.attach_relational(
        RelationalRepositories(engine, SqlUserProfiles(engine), SqlSubscriptions(engine),
                               sql_guard())
    )
    test_metadata.create_all(engine)
    return stores


def fast_settings(make_settings: SettingsFactory, redis_url: str) -> Settings:
    return make_settings(
        REDIS_URL=redis_url, EVENTS_REPLAY_INTERVAL="0.05", EVENTS_READ_BLOCK_MS="50",
        EVENTS_RETRY_BASE_DELAY="0.001", EVENTS_RETRY_MAX_DELAY="0.05",
        EVENTS_REDIS_TIMEOUT="1", EVENTS_ORDERING_GAP_TIMEOUT="30",
    )


def diagnose(engine: Engine, redis_server: RedisServer) -> str:
    """Which events are missing, and whether each reached the stream (for a failing run)."""
    handled = set(recorded(engine))
    missing = sorted({(u, s) for u in range(1, USERS + 1) for s in range(1, PER_USER + 1)}
                     - handled)
    client = redis_server.client()
    in_stream = {(e.user_id, e.seq) for e in (parse_event(f[b"body"])
                                             for _, f in stream_entries(client, STREAM))}
    return (
        f"{len(missing)} events not handled: {missing[:20]}; of those in the stream: "
        f"{sorted(set(missing) & in_stream)[:20]}; outbox: {SqlOutbox(lambda: engine).count()}; "
        f"counters: {event_counters.snapshot()}"
    )


@pytest.fixture
def running(
    make_settings: SettingsFactory, redis_server: RedisServer, stores: Stores
) -> Iterator[Events]:
    settings = fast_settings(make_settings, redis_server.url)
    events = Events(settings, stores)
    handlers = Handlers()
    handlers.on(UserInteraction, record_effect)
    tree = spawn(lambda: events_supervisor(settings, stores, events, handlers))
    yield events
    tree.stop(block=True, timeout=ASK)


def test_redis_killed_mid_publish_and_restarted_loses_nothing_and_keeps_order(
    running: Events, redis_server: RedisServer, engine: Engine
) -> None:
    published = 0
    published_lock = threading.Lock()
    failures_before = event_counters.get("publish_failures")
    killed = threading.Event()

    def user_publishes(user_id: int) -> None:
        nonlocal published
        pause = threading.Event()
        for seq in range(1, PER_USER + 1):
            if user_id % 2 and seq == PER_USER // 2:
                # Half the users are surely mid-sequence at the crash, however the threads
                # get scheduled on a loaded machine; the other half run freely through it.
                killed.wait(scaled(DEFAULT_CEILING))
            running.publish(UserInteraction(user_id=user_id, seq=seq, action="tap"))
            with published_lock:
                published += 1
            pause.wait(0.002)  # like a user's session: events spread over time

    threads = [threading.Thread(target=user_publishes, args=(u,)) for u in range(1, USERS + 1)]
    for thread in threads:
        thread.start()
    eventually(lambda: published >= 300, "300 events published before the crash")
    redis_server.kill()
    killed.set()
    for thread in threads:
        joined(thread, "the publisher thread finished")
    assert published == USERS * PER_USER
    assert SqlOutbox(lambda: engine).count() > 0  # events wait in the outbox for Redis
    assert event_counters.get("publish_failures") > failures_before

    redis_server.start()

    try:
        eventually(lambda: len(recorded(engine)) >= USERS * PER_USER, "all 1,000 events handled")
    except AssertionError:
        raise AssertionError(diagnose(engine, redis_server)) from None
    eventually(lambda: SqlOutbox(lambda: engine).count() == 0, "the outbox drained")
    effects = recorded(engine)
    assert len(effects) == USERS * PER_USER  # exactly once: no effect twice
    by_user: dict[int, list[int]] = defaultdict(list)
    for user_id, seq in effects:
        by_user[user_id].append(seq)
    assert by_user == {u: list(range(1, PER_USER + 1)) for u in range(1, USERS + 1)}
    with engine.connect() as conn:
        assert conn.execute(dead_letters.select()).first() is None


def test_bus_started_while_redis_is_down_keeps_events_and_sends_them_later(
    running: Events, redis_server: RedisServer, engine: Engine
) -> None:
    redis_server.kill()
    for seq in range(1, 6):
        running.publish(UserInteraction(user_id=1, seq=seq, action="tap"))
    assert SqlOutbox(lambda: engine).count() == 5
    redis_server.start()
    eventually(lambda: recorded(engine) == [(1, s) for s in range(1, 6)], "5 events handled")
    eventually(lambda: SqlOutbox(lambda: engine).count() == 0, "the outbox drained")


def test_bus_actor_answers_health_and_replays_on_request(
    make_settings: SettingsFactory, redis_server: RedisServer, stores: Stores, engine: Engine
) -> None:
    settings = make_settings(REDIS_URL=redis_server.url, EVENTS_REPLAY_INTERVAL="600",
                             EVENTS_RETRY_BASE_DELAY="0.001")
    events = Events(settings, stores)
    bus = spawn(lambda: EventBus(settings, stores, events))
    try:
        assert ask(bus, GetBusHealth(), timeout=ASK).status is HealthStatus.PASS
        redis_server.kill()
        events.publish(UserInteraction(user_id=1, seq=1, action="tap"))
        assert ask(bus, GetBusHealth(), timeout=ASK).status is HealthStatus.WARN
        redis_server.start()
        assert ask(bus, ReplayOutbox(), timeout=ASK) == 1
        assert SqlOutbox(lambda: engine).count() == 0
    finally:
        bus.stop(block=True)
    # Stopped: the handle keeps events in the outbox for the next bus.
    events.publish(UserInteraction(user_id=1, seq=2, action="tap"))
    assert SqlOutbox(lambda: engine).count() == 1


class CrashingOnce(Handlers):
    """Fails the consumer loop itself (not a handler) once: a bug, not a bad event."""

    def __init__(self) -> None:
        super().__init__()
        self.crashed = False

    def for_event(self, event: Any) -> list[Handler]:
        if not self.crashed:
            self.crashed = True
            raise RuntimeError("bug in the consumer loop")
        return super().for_event(event)


def test_a_dead_consumer_loop_fails_the_processor_and_its_supervisor_restarts_it(
    make_settings: SettingsFactory, redis_server: RedisServer, stores: Stores, engine: Engine
) -> None:
    settings = fast_settings(make_settings, redis_server.url)
    events = Events(settings, stores)
    handlers = CrashingOnce()
    handlers.on(UserInteraction, record_effect)
    supervisor = events_supervisor(settings, stores, events, handlers)
    tree = spawn(lambda: supervisor)
    try:
        first = supervisor.child("processor")
        events.publish(UserInteraction(user_id=1, seq=1, action="tap"))
        eventually(lambda: recorded(engine) == [(1, 1)], "handled by the restarted processor")
        assert handlers.crashed
        assert supervisor.child("processor") is not first
    finally:
        tree.stop(block=True, timeout=ASK)
