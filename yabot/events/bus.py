"""The `EventBus` actor and the `Events` handle through which sessions publish.

Like the store actors, the bus owns lifecycle (the Redis client, the replayer thread), not
the work: `publish` runs in the caller's thread on the `StreamPublisher` the bus attached to
`Events`, so one user's publish never waits in a queue behind another's.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import redis
import structlog

from actors import Actor, Ask
from yabot.events.backoff import PeriodicThread
from yabot.events.counters import EventCounters, event_counters
from yabot.events.groups import ConsumerGroup
from yabot.events.local import LocalDelivery
from yabot.events.models import BaseEvent
from yabot.events.outbox import SqlOutbox
from yabot.events.publisher import Outcome, StreamPublisher, connect_redis
from yabot.events.relay import OutboxRelay
from yabot.health import ComponentHealth, HealthStatus
from yabot.settings import Settings
from yabot.stores.handles import Stores

log = structlog.get_logger("yabot.events")


class Events:
    """What sessions hold to publish events; survives restarts of the bus.

    `publish` never raises. While no bus is attached (it is starting or restarting), events
    go straight to the SQL outbox, which the next bus drains first (to Redis, or without
    Redis to the consumer groups in-process). Attaching recounts the outbox under the same
    lock the fallback appends under, so a fallback event is never overtaken.
    """

    def __init__(
        self, settings: Settings, stores: Stores, counters: EventCounters = event_counters
    ) -> None:
        self._settings = settings
        self._stores = stores
        self._counters = counters
        self._lock = threading.Lock()
        self._publisher: StreamPublisher | None = None
        self._outbox = SqlOutbox(lambda: stores.relational.engine)

    @property
    def publisher(self) -> StreamPublisher | None:
        return self._publisher

    def attach(self, publisher: StreamPublisher | None) -> None:
        with self._lock:
            if publisher is not None:
                publisher.recount_backlog()
            self._publisher = publisher

    def publish(self, event: BaseEvent) -> Outcome:
        publisher = self._publisher
        if publisher is None:
            with self._lock:
                publisher = self._publisher
                if publisher is None:
                    return self._without_bus(event)
        return publisher.publish(event)

    def _without_bus(self, event: BaseEvent) -> Outcome:
        try:
            self._outbox.append(str(event.event_id), self._settings.events.stream, event.to_json())
        except Exception:
            log.exception("event lost: no bus and no outbox", event_id=str(event.event_id))
            self._counters.incr("lost")
            return Outcome.LOST
        self._counters.incr("outboxed")
        return Outcome.OUTBOX

    def health(self) -> ComponentHealth:
        publisher = self._publisher
        if publisher is None:
            return ComponentHealth(
                name="events", status=HealthStatus.WARN,
                output="event bus is not running; events go to the outbox",
            )
        return publisher.health()


class GetBusHealth(Ask[ComponentHealth]):
    """The bus's health (ping, stream length, group lag, outbox size)."""


class ReplayOutbox(Ask[int]):
    """Drain the outbox now; replies how many events were sent."""


class EventBus(Actor):
    """Owns the Redis client and the outbox replayer; attaches a `StreamPublisher` to `Events`.

    Start: needs the SQL store (the outbox) running, not Redis — a bus started while Redis is
    down keeps events in the outbox and the replayer sends them when Redis answers. Stop:
    detaches first (later events go to the outbox), then stops the replayer and closes the
    client. Without `REDIS_URL` every event goes to the outbox and a relay thread delivers it
    to the consumer groups in this process (`LocalDelivery`): nothing is dropped.
    """

    def __init__(
        self, settings: Settings, stores: Stores, events: Events,
        groups: Sequence[ConsumerGroup] = (), counters: EventCounters = event_counters,
    ) -> None:
        super().__init__()
        self._groups = groups
        self._settings = settings
        self._stores = stores
        self._events = events
        self._counters = counters
        self._client: redis.Redis | None = None
        self._publisher: StreamPublisher | None = None
        self._replayer: PeriodicThread | None = None

    def pre_start(self) -> None:
        self._stores.relational  # noqa: B018 (fails the start with StoreUnavailable if down)
        url = self._settings.redis.url
        stores = self._stores
        outbox = SqlOutbox(lambda: stores.relational.engine)
        events = self._settings.events
        if url is not None:
            self._client = connect_redis(url.get_secret_value(), events)
        else:
            log.info("REDIS_URL is unset: events are delivered in-process from the outbox")
            sink = LocalDelivery(lambda: stores.relational.engine, self._groups, events,
                                 counters=self._counters)
            relay = OutboxRelay(outbox, sink, events.replay_batch)
            self._replayer = PeriodicThread("event-local-delivery", events.replay_interval,
                                            relay.drain).start()
        local = self._replayer
        publisher = StreamPublisher(
            self._client, outbox, events, counters=self._counters,
            on_local=local.wake if local is not None else None,
        )
        self._events.attach(publisher)
        self._publisher = publisher
        if local is not None:
            local.wake()  # what waited in the outbox (a restart, a crash) goes first
        if self._client is not None:
            self._replayer = PeriodicThread(
                "event-outbox-replayer", self._settings.events.replay_interval,
                publisher.replay_if_backlog,
            ).start()
            if publisher.has_backlog:
                self._replayer.wake()
        log.info("event bus started", redis=self._client is not None,
                 backlog=publisher.has_backlog)

    def post_stop(self) -> None:
        self._events.attach(None)
        if self._publisher is not None:
            self._publisher.close()
        if self._replayer is not None:
            self._replayer.stop()
        if self._client is not None:
            self._client.close()

    def handle(self, message: Any) -> Any:
        match message:
            case GetBusHealth():
                assert self._publisher is not None
                return self._publisher.health()
            case ReplayOutbox():
                assert self._publisher is not None
                return self._publisher.replay()
        return super().handle(message)
