"""The `EventBus` actor and the `Events` handle through which the process relays events.

Events are not published by whoever causes them: they are stored with the change they
describe, in the ``event_outbox`` table (the transactional outbox, `yabot.stores.outbox`).
The bus owns what moves them on — the Redis client and the `OutboxRelay` thread — and
`Events` is the handle the rest of the process keeps across restarts of the bus: `wake` after
a commit, `publish` for an event of no stored change, `health` for `/readyz`.
"""

from __future__ import annotations

from typing import Any

import redis
import structlog

from actors import Actor, Ask
from yabot.cluster.relay_lock import RelayLock
from yabot.events.counters import EventCounters, event_counters
from yabot.events.models import BaseEvent
from yabot.events.outbox import SqlOutbox
from yabot.events.publisher import connect_redis, stream_health
from yabot.events.relay import DiscardSink, OutboxRelay, OutboxSink, RedisStreamSink
from yabot.health import ComponentHealth, HealthStatus
from yabot.intake.choice import consumer_name
from yabot.logs import throttled
from yabot.settings import Settings
from yabot.stores.handles import Stores
from yabot.stores.outbox import OutboxRecord

log = structlog.get_logger("yabot.events")


class Events:
    """What the process holds to move events on; survives restarts of the bus.

    - `wake` never blocks and never raises: it tells the running relay to deliver now (with
      no bus attached, the rows wait in the outbox for the next bus, which drains it first).
    - `publish` stores one event of no change of its own in the outbox (in order behind
      everything stored before it) and wakes the relay; it never raises (a failure is logged
      and counted as lost).
    """

    def __init__(
        self, settings: Settings, stores: Stores, counters: EventCounters = event_counters
    ) -> None:
        self._settings = settings
        self._stores = stores
        self._counters = counters
        self._relay: OutboxRelay | None = None
        self._client: redis.Redis | None = None
        self.outbox = SqlOutbox(lambda: stores.relational.engine)
        #: Where the relay delivers instead of Redis (set before the bus starts): an
        #: in-process consumer, or a test's recorder. None: Redis, or discard without it.
        self.sink: OutboxSink | None = None

    @property
    def relay(self) -> OutboxRelay | None:
        return self._relay

    def attach(self, relay: OutboxRelay | None, client: redis.Redis | None = None) -> None:
        self._relay = relay
        self._client = client

    def wake(self) -> None:
        relay = self._relay
        if relay is not None:
            relay.wake()

    def publish(self, event: BaseEvent) -> bool:
        try:
            self.outbox.append_records([OutboxRecord(
                str(event.event_id), self._settings.events.stream, event.to_json())])
        except Exception as exc:
            throttled(log, "event lost: the outbox refused it", event_id=str(event.event_id),
                      error=repr(exc))
            self._counters.incr("lost")
            return False
        self.wake()
        return True

    def health(self) -> ComponentHealth:
        """The outbox size (read under the SQL store's retry guard: one dropped connection is
        retried, and a failure that outlasts the guard is WARN — events wait — not FAIL),
        then Redis (skipped while the relay's breaker is open, so `/readyz` stays fast)."""
        relay = self._relay
        outbox: int | None
        try:
            outbox = self._stores.relational.guard.run(self.outbox.count, "outbox size")
        except Exception as exc:
            health = stream_health(None, self._settings.events, None, False)
            return health.model_copy(update={
                "status": HealthStatus.WARN,
                "output": f"outbox unreadable ({type(exc).__name__}); retried",
            })
        if relay is None:
            return ComponentHealth(
                name="events", status=HealthStatus.WARN, details={"outbox": outbox},
                output="the relay is not running; events wait in the outbox",
            )
        return stream_health(self._client, self._settings.events, outbox, relay.breaker_open)


class GetBusHealth(Ask[ComponentHealth]):
    """The bus's health (ping, stream length, group lag, outbox size)."""


class ReplayOutbox(Ask[int]):
    """Drain the outbox now; replies how many events were delivered."""


class EventBus(Actor):
    """Owns the Redis client and the outbox relay; attaches them to `Events`.

    Start: needs the SQL store (the outbox) running, not Redis — a bus started while Redis is
    down keeps events in the outbox and the relay sends them when Redis answers. Stop:
    detaches, stops the relay (its current batch finishes) and closes the client. Without
    `REDIS_URL` the relay discards rows and counts them (`DiscardSink`).
    """

    def __init__(
        self, settings: Settings, stores: Stores, events: Events,
        counters: EventCounters = event_counters,
    ) -> None:
        super().__init__()
        self._settings = settings
        self._stores = stores
        self._events = events
        self._counters = counters
        self._client: redis.Redis | None = None
        self._relay: OutboxRelay | None = None

    def pre_start(self) -> None:
        self._stores.relational  # noqa: B018 (fails the start with StoreUnavailable if down)
        url = self._settings.redis.url
        sink: OutboxSink
        exclusive: RelayLock | None = None
        if self._events.sink is not None:
            sink = self._events.sink
        elif url is not None:
            self._client = connect_redis(url.get_secret_value(), self._settings.events)
            sink = RedisStreamSink(self._client, self._settings.events)
            # Every process relays the same outbox: one at a time (yabot.cluster.relay_lock).
            exclusive = RelayLock(self._client, f"{self._settings.events.stream}:relay-lock",
                                  consumer_name(), self._settings.scale.lease_ttl)
        else:
            log.info("events are not published: REDIS_URL is unset (they are counted, dropped)")
            sink = DiscardSink(self._counters)
        self._relay = OutboxRelay(self._events.outbox, sink, self._settings.events,
                                  counters=self._counters, exclusive=exclusive).start()
        self._events.attach(self._relay, self._client)
        log.info("event bus started", redis=self._client is not None)

    def post_stop(self) -> None:
        self._events.attach(None)
        if self._relay is not None:
            self._relay.stop()
        if self._client is not None:
            self._client.close()

    def handle(self, message: Any) -> Any:
        match message:
            case GetBusHealth():
                return self._events.health()
            case ReplayOutbox():
                assert self._relay is not None
                return self._relay.drain(force=True)
        return super().handle(message)


__all__ = ["EventBus", "Events", "GetBusHealth", "ReplayOutbox"]
