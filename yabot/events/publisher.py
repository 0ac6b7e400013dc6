"""Publishing events to a Redis stream, with the SQL outbox as the durable fallback.

Plain classes (no actor): `StreamPublisher` does the work in the caller's thread, the
`EventBus` actor owns its lifecycle and its replayer thread.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from enum import StrEnum

import redis
import structlog
from redis.backoff import NoBackoff
from redis.retry import Retry
from redis.typing import EncodableT, FieldT
from sqlalchemy.exc import OperationalError

from yabot.events.backoff import Backoff
from yabot.events.counters import EventCounters, event_counters
from yabot.events.models import BaseEvent
from yabot.events.outbox import SqlOutbox
from yabot.health import ComponentHealth, HealthStatus
from yabot.settings import EventSettings

log = structlog.get_logger("yabot.events")

#: Errors after which Redis may answer again: worth a retry, then the outbox.
TRANSIENT = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)


def connect_redis(url: str, settings: EventSettings, *, extra_timeout: float = 0.0) -> redis.Redis:
    """A client that fails fast: our own backoff decides about retries.

    redis-py 8 retries every command 10 times with backoff (up to 1 s apart) by default,
    which would stall a user's request for seconds while Redis is down.
    """
    return redis.Redis.from_url(
        url,
        socket_timeout=settings.redis_timeout + extra_timeout,
        socket_connect_timeout=settings.redis_timeout,
        retry=Retry(NoBackoff(), 0),
    )


def stream_fields(event_id: str, body: str) -> dict[FieldT, EncodableT]:
    """The fields of a stream entry: the id (for tools and dead letters) and the JSON body."""
    return {"event_id": event_id, "body": body}


class Outcome(StrEnum):
    """Where `StreamPublisher.publish` put an event."""

    SENT = "sent"  # appended to the Redis stream
    OUTBOX = "outbox"  # stored in the SQL outbox; the replayer sends it later
    LOCAL = "local"  # no Redis configured: stored in the outbox for in-process delivery
    DROPPED = "dropped"  # no Redis and no outbox (nothing publishes at all)
    LOST = "lost"  # neither Redis nor the outbox took it (both down); logged and counted


class StreamPublisher:
    """``publish`` appends an event to the stream, or to the outbox when Redis does not answer.

    Guarantees:
    - `publish` never raises; it returns an `Outcome` and logs and counts anything but SENT.
    - Order: events from one thread reach the stream in the order `publish` was called. While
      the outbox holds anything, new events are appended behind it instead of being sent, and
      `replay` drains it oldest first; so an event never overtakes one published before it.
    - At least once: an event may reach the stream twice (a reply lost after Redis stored
      it, or a crash between sending a replay batch and deleting it); consumers deduplicate
      by ``event_id``.
    - Thread-safe. Sends are serialised under one lock (Redis serialises them anyway); the
      lock is held during retries, so callers queue behind a failing send instead of
      overtaking it.
    """

    def __init__(
        self,
        client: redis.Redis | None,
        outbox: SqlOutbox,
        settings: EventSettings,
        *,
        counters: EventCounters = event_counters,
        sleep: Callable[[float], None] = time.sleep,
        on_local: Callable[[], None] | None = None,
    ) -> None:
        self._client = client
        #: Called after an event went to the outbox for in-process delivery (no Redis).
        self._on_local = on_local
        self._outbox = outbox
        self._settings = settings
        self._counters = counters
        self._sleep = sleep
        self._backoff = Backoff(settings.retry_base_delay, settings.retry_max_delay)
        self._lock = threading.Lock()
        self._replay_lock = threading.Lock()
        self._backlog = False
        self._closed = False

    @property
    def stream(self) -> str:
        return self._settings.stream

    @property
    def enabled(self) -> bool:
        """False when no Redis is configured: events are delivered in-process from the
        outbox instead."""
        return self._client is not None

    @property
    def has_backlog(self) -> bool:
        return self._backlog

    def recount_backlog(self) -> int:
        """Read the outbox size (after a restart, a crash, or appends made without us)."""
        with self._lock:
            size = self._outbox.count()
            self._backlog = size > 0
            return size

    # -- publishing -----------------------------------------------------------------------

    def publish(self, event: BaseEvent) -> Outcome:
        try:
            return self._publish(str(event.event_id), event.to_json())
        except Exception:  # the user's request must not fail because of an event
            log.exception("event lost", event_id=str(event.event_id), event_type=_type(event))
            self._counters.incr("lost")
            return Outcome.LOST

    def _publish(self, event_id: str, body: str) -> Outcome:
        with self._lock:
            if self._client is None:
                self._append_with_retry(event_id, body)
                self._counters.incr("outboxed_local")
                if self._on_local is not None:
                    self._on_local()
                return Outcome.LOCAL
            if not self._backlog and not self._closed:
                try:
                    self._send_with_retry(self._client, event_id, body)
                except redis.exceptions.RedisError as exc:
                    log.warning(
                        "redis refused an event; events go to the outbox until it answers",
                        event_id=event_id, error=repr(exc),
                    )
                    self._counters.incr("publish_failures")
                else:
                    self._counters.incr("published")
                    return Outcome.SENT
            self._append_with_retry(event_id, body)
            self._backlog = True
            self._counters.incr("outboxed")
            return Outcome.OUTBOX

    def _append_with_retry(self, event_id: str, body: str) -> None:
        """The outbox is the last resort: a transient SQL error (SQLite's "database is
        locked" after its busy timeout) is retried like a Redis one before giving up."""
        attempt = 0
        while True:
            try:
                self._outbox.append(event_id, self._settings.stream, body)
                return
            except OperationalError:
                attempt += 1
                if attempt > self._settings.publish_retries:
                    raise
                self._counters.incr("outbox_retries")
                self._sleep(self._backoff.delay(attempt))

    def _send_with_retry(self, client: redis.Redis, event_id: str, body: str) -> None:
        attempt = 0
        while True:
            try:
                client.xadd(
                    self._settings.stream, stream_fields(event_id, body),
                    maxlen=self._settings.stream_max_length, approximate=True,
                )
                return
            except TRANSIENT:
                attempt += 1
                if attempt > self._settings.publish_retries:
                    raise
                self._counters.incr("publish_retries")
                self._sleep(self._backoff.delay(attempt))

    # -- replaying the outbox -------------------------------------------------------------

    def replay(self) -> int:
        """Send the outbox to Redis oldest first, in batches; return how many were sent.

        Stops at the first Redis error (the next call starts again from the oldest row).
        Clears the backlog only when the outbox is empty under the publish lock, so an event
        appended meanwhile is sent by this replay, never overtaken.
        """
        client = self._client
        if client is None:
            return 0
        with self._replay_lock:
            sent = 0
            while not self._closed:
                batch = self._outbox.oldest(self._settings.replay_batch)
                if not batch:
                    with self._lock:
                        if self._outbox.count() == 0:
                            if self._backlog:
                                log.info("outbox drained; publishing to redis again", sent=sent)
                            self._backlog = False
                            return sent
                    continue
                pipe = client.pipeline(transaction=False)
                for entry in batch:
                    pipe.xadd(
                        entry.stream, stream_fields(entry.event_id, entry.body),
                        maxlen=self._settings.stream_max_length, approximate=True,
                    )
                try:
                    pipe.execute()
                except redis.exceptions.RedisError as exc:
                    log.info("outbox replay waits for redis", error=repr(exc), sent=sent)
                    return sent
                self._outbox.remove([entry.position for entry in batch])
                sent += len(batch)
                self._counters.incr("replayed", len(batch))
            return sent

    def replay_if_backlog(self) -> int:
        return self.replay() if self._backlog else 0

    def close(self) -> None:
        """Stop sending; later `publish` calls go to the outbox. Does not close the client."""
        with self._lock:
            self._closed = True

    # -- health ---------------------------------------------------------------------------

    def health(self) -> ComponentHealth:
        """Ping, stream length, consumer-group lag, outbox size; quick and never raising."""
        started = time.perf_counter()
        details: dict[str, str | int | float | bool] = {"stream": self._settings.stream}
        try:
            details["outbox"] = self._outbox.count()
        except Exception as exc:
            return _health(HealthStatus.FAIL, started, f"outbox unreadable: {type(exc).__name__}",
                           details)
        if self._client is None:
            return _health(HealthStatus.PASS, started,
                           "in-process: REDIS_URL is unset; the outbox feeds the consumers",
                           details)
        try:
            self._client.ping()
            details["stream_length"] = int(self._client.xlen(self._settings.stream))
            details.update(self._group_details(self._client))
        except redis.exceptions.RedisError as exc:
            return _health(HealthStatus.WARN, started,
                           f"redis unreachable ({type(exc).__name__}); events go to the outbox",
                           details)
        if details["outbox"]:
            return _health(HealthStatus.WARN, started, "replaying the outbox", details)
        return _health(HealthStatus.PASS, started, None, details)

    def _group_details(self, client: redis.Redis) -> dict[str, int]:
        try:
            groups = client.xinfo_groups(self._settings.stream)
        except redis.exceptions.ResponseError:  # no stream yet
            return {}
        for group in groups:
            name = group.get("name", b"")
            if isinstance(name, bytes):
                name = name.decode()
            if name == self._settings.consumer_group:
                lag = group.get("lag")
                return {"pending": int(group.get("pending", 0)),
                        **({"lag": int(lag)} if lag is not None else {})}
        return {}


def _type(event: BaseEvent) -> str:
    return str(getattr(event, "type", type(event).__name__))


def _health(
    status: HealthStatus, started: float, output: str | None,
    details: dict[str, str | int | float | bool],
) -> ComponentHealth:
    return ComponentHealth(
        name="events", status=status, output=output, details=details,
        observed_ms=(time.perf_counter() - started) * 1000,
    )
