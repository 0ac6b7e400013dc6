"""Consuming the event stream: a consumer-group reader with idempotent, ordered dispatch.

`StreamConsumer` is the plain class that does the work on one thread; the `EventProcessor`
actor owns that thread and fails (so its supervisor restarts it) if the loop dies.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import redis
import structlog
from sqlalchemy import Engine, insert
from sqlalchemy.exc import SQLAlchemyError

from actors import Actor, ActorDead, Message, tell
from yabot.errors import InvalidEvent, StoreUnavailable
from yabot.events.counters import EventCounters, event_counters
from yabot.events.groups import (
    ConsumerGroup,
    Handler,
    HandlerFailed,
    Handlers,
    handle_once,
    handler_failed,
)
from yabot.events.models import Event, parse_event
from yabot.events.ordering import OrderingBuffer
from yabot.events.publisher import TRANSIENT, connect_redis
from yabot.settings import EventSettings, Settings
from yabot.stores.handles import Stores
from yabot.stores.retry import RetryPolicy, retry_call
from yabot.stores.tables import dead_letters

log = structlog.get_logger("yabot.events.processor")

MAX_ERROR_TEXT = 4000
DEAD_LETTER_SUFFIX = ":dead"

#: Infrastructure failures: the event is left pending and read again, never dead-lettered.
INFRASTRUCTURE = (*TRANSIENT, SQLAlchemyError, StoreUnavailable)

__all__ = ["ConsumerGroup", "EventProcessor", "Handler", "Handlers", "StreamConsumer"]


def default_consumer_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


class StreamConsumer:
    """Reads ``stream`` as ``consumer`` of ``group`` and hands each event to its handlers.

    Guarantees:
    - Effectively once per group: ``(group, event_id)`` goes into ``processed_events`` in the
      same transaction as the handlers run in; a redelivered or duplicated event is acked
      without running handlers again.
    - Per-user order: events pass an `OrderingBuffer` keyed by user and ``seq``.
    - An entry is acked only after it was handled, skipped as a duplicate, or dead-lettered.
      A handler that raises is retried ``handler_retries`` times with backoff; then the event
      goes to the dead-letter stream (``<stream>:dead``) and the ``dead_letters`` table with
      the error text, and the consumer goes on. An entry that is not an event is
      dead-lettered at once.
    - Redis or SQL being down is not the event's fault: the entry stays pending, the loop
      backs off, and after recovery it first re-reads its own pending entries.
    - Entries left pending by a consumer that died are claimed with XAUTOCLAIM after
      ``claim_min_idle`` seconds.
    """

    def __init__(
        self,
        client: redis.Redis,
        engine: Callable[[], Engine],
        handlers: Handlers,
        settings: EventSettings,
        *,
        consumer: str | None = None,
        group: str | None = None,
        counters: EventCounters = event_counters,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._client = client
        self._engine = engine
        self._handlers = handlers
        self._settings = settings
        self.consumer = consumer or settings.consumer_name or default_consumer_name()
        #: The consumer group read as (``EVENTS_CONSUMER_GROUP`` unless given).
        self.group = group or settings.consumer_group
        self._counters = counters
        self._clock = clock
        self._sleep = sleep
        self._backoff = RetryPolicy(attempts=settings.handler_retries + 1,
                                    base_delay=settings.retry_base_delay,
                                    max_delay=settings.retry_max_delay)
        self._buffer: OrderingBuffer[tuple[Event, bytes]] = OrderingBuffer(
            settings.ordering_gap_timeout, clock, counters=counters
        )
        self._group_ready = False
        self._pending_cursor: bytes | None = b"0"  # read own pending entries first
        self._next_claim = clock()
        self._claim_cursor: str | bytes = "0-0"
        self._acks: list[bytes] = []  # handled, not yet acked: one XACK per poll

    @property
    def stream(self) -> str:
        return self._settings.stream

    @property
    def dead_letter_stream(self) -> str:
        return self._settings.stream + DEAD_LETTER_SUFFIX

    # -- the loop ---------------------------------------------------------------------------

    def run(self, stopping: threading.Event) -> None:
        """Poll until ``stopping`` is set. Redis or SQL outages are waited out, not raised."""
        # Not `retry_call`: a loop that never gives up (outages are waited out until stopped),
        # with `RetryPolicy`'s delays.
        failures = 0
        while not stopping.is_set():
            try:
                self.poll_once()
                failures = 0
            except (*INFRASTRUCTURE, redis.exceptions.ResponseError) as exc:
                # A ResponseError (e.g. WRONGTYPE: the stream key holds something else) needs
                # an operator, not a restart loop that would end in escalation to the root.
                failures += 1
                self._counters.incr("consumer_errors")
                log.warning("event consumer waits for its stores", error=repr(exc),
                            attempt=failures)
                self._pending_cursor = b"0"
                stopping.wait(self._backoff.delay(min(failures, 10)) + 0.05)

    def poll_once(self) -> int:
        """One read (blocking up to ``read_block_ms``), then gap expiry and claims.

        Returns how many stream entries were read.
        """
        if not self._group_ready:
            self.ensure_group()
        entries = self._read()
        try:
            for message_id, fields in entries:
                self._accept(message_id, fields)
            for event, message_id in self._buffer.expire():
                self._process(event, message_id)
            if self._clock() >= self._next_claim:
                self._next_claim = self._clock() + self._settings.claim_interval
                self._claim()
        finally:
            self._flush_acks()
        return len(entries)

    def _flush_acks(self) -> None:
        """XACK what was handled. If Redis is gone, the entries are redelivered later and
        ``processed_events`` turns them into duplicates: nothing runs twice."""
        acks, self._acks = self._acks, []
        if acks:
            self._client.xack(self.stream, self.group, *acks)

    def ensure_group(self) -> None:
        """Create the group at the stream's start (``0``): a new group handles what the bus
        published before it existed; ``processed_events`` skips what was handled already."""
        try:
            self._client.xgroup_create(self.stream, self.group, id="0",
                                       mkstream=True)
            log.info("consumer group created", stream=self.stream,
                     group=self.group)
        except redis.exceptions.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self._group_ready = True

    def _read(self) -> list[tuple[bytes, dict[bytes, bytes]]]:
        cursor = self._pending_cursor
        reply: Any  # RESP2: [[stream, [(id, fields), ...]]], or [] when nothing arrived
        try:
            reply = self._client.xreadgroup(
                self.group, self.consumer,
                {self.stream: cursor if cursor is not None else ">"},
                count=self._settings.read_count,
                block=None if cursor is not None else self._settings.read_block_ms,
            )
        except redis.exceptions.ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            log.warning("consumer group vanished (redis lost its data?); creating it again")
            self._group_ready = False
            return []
        entries: list[tuple[bytes, dict[bytes, bytes]]] = reply[0][1] if reply else []
        if cursor is not None:
            # Re-reading our own history: walk it to its end, then switch to new entries.
            # (Entries already acked, or trimmed, come back with empty fields.)
            entries = [(mid, fields) for mid, fields in entries if fields]
            self._pending_cursor = reply[0][1][-1][0] if reply and reply[0][1] else None
        return entries

    def _claim(self) -> None:
        reply: Any = self._client.xautoclaim(
            self.stream, self.group, self.consumer,
            min_idle_time=int(self._settings.claim_min_idle * 1000),
            start_id=self._claim_cursor, count=self._settings.read_count,
        )
        self._claim_cursor = reply[0]
        claimed = [(mid, fields) for mid, fields in reply[1] if fields]
        deleted = reply[2] if len(reply) > 2 else []
        if claimed:
            log.info("claimed pending events of another consumer", count=len(claimed))
            self._counters.incr("claimed", len(claimed))
        if deleted:
            log.warning("pending events were trimmed from the stream before being handled",
                        count=len(deleted))
            self._counters.incr("trimmed_before_handling", len(deleted))
        for message_id, fields in claimed:
            self._accept(message_id, fields)

    # -- one entry ----------------------------------------------------------------------------

    def _accept(self, message_id: bytes, fields: dict[bytes, bytes]) -> None:
        body = fields.get(b"body")
        try:
            if body is None:
                raise InvalidEvent("stream entry has no body field")
            event = parse_event(body)
        except InvalidEvent as exc:
            raw_id = fields.get(b"event_id", message_id).decode(errors="replace")
            self._dead_letter(message_id, raw_id[:36], _text(body, fields), exc, attempts=0)
            self._counters.incr("unparseable")
            return
        released = self._buffer.offer(event.user_id, event.seq, (event, message_id),
                                      event.occurred_at.timestamp())
        for ready, ready_id in released:
            self._process(ready, ready_id)

    def _process(self, event: Event, message_id: bytes) -> None:
        try:
            handled = retry_call(
                lambda: self._handle(event), is_transient=handler_failed,
                policy=self._backoff, sleep=self._sleep, what=f"event {event.event_id} handler",
                on_retry=lambda _attempt, _error: self._counters.incr("handler_retries"))
        except HandlerFailed as failed:
            self._dead_letter(message_id, str(event.event_id), event.to_json(), failed.error,
                              attempts=self._backoff.attempts)
            return
        self._counters.incr("handled" if handled else "duplicates")
        self._acks.append(message_id)

    def _handle(self, event: Event) -> bool:
        """Run the handlers and record the event in one transaction; False if seen before."""
        return handle_once(self._engine(), self.group, self._handlers, event)

    def _dead_letter(
        self, message_id: bytes, event_id: str, body: str, error: Exception, attempts: int
    ) -> None:
        text = f"{type(error).__name__}: {error}"[:MAX_ERROR_TEXT]
        group = self.group
        with self._engine().begin() as conn:
            conn.execute(insert(dead_letters).values(
                consumer_group=group, event_id=event_id, stream=self.stream, body=body,
                error=text, attempts=attempts, failed_at=datetime.now(UTC),
            ))
        self._client.xadd(
            self.dead_letter_stream,
            {"event_id": event_id, "body": body, "error": text, "attempts": attempts,
             "group": group, "message_id": message_id},
            maxlen=self._settings.stream_max_length, approximate=True,
        )
        self._acks.append(message_id)
        self._counters.incr("dead_lettered")
        log.error("event dead-lettered", event_id=event_id, attempts=attempts, error=text)


def _text(body: bytes | None, fields: dict[bytes, bytes]) -> str:
    if body is not None:
        return body.decode(errors="replace")
    return repr({k.decode(errors="replace"): v.decode(errors="replace")
                 for k, v in fields.items()})


class ConsumerCrashed(Message):
    """Told to the processor by its consumer thread when the loop died of a bug."""

    error: str


class EventProcessor(Actor):
    """Owns one consumer thread per consumer group (groups without handlers are not run).

    Start never waits for Redis (the loops do); stop sets a flag the loops see within one
    ``read_block_ms`` and joins the threads. If a loop dies of an unexpected error, the actor
    fails and its supervisor starts a fresh one. Without ``REDIS_URL`` it runs idle: the
    bus then delivers events from the SQL outbox to the same groups in-process.
    """

    def __init__(
        self, settings: Settings, stores: Stores, groups: Sequence[ConsumerGroup],
        counters: EventCounters = event_counters,
    ) -> None:
        super().__init__()
        self._settings = settings
        self._stores = stores
        self._groups = [group for group in groups if group.handlers]
        self._counters = counters
        self._client: redis.Redis | None = None
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []

    def pre_start(self) -> None:
        url = self._settings.redis.url
        if url is None:
            log.info("event processor idle: REDIS_URL is unset (the bus delivers in-process)")
            return
        events = self._settings.events
        # The socket must outlive a blocking read.
        self._client = connect_redis(url.get_secret_value(), events,
                                     extra_timeout=events.read_block_ms / 1000)
        stores = self._stores
        me = self.actor_ref
        for group in self._groups:
            consumer = StreamConsumer(self._client, lambda: stores.relational.engine,
                                      group.handlers, events, group=group.name,
                                      counters=self._counters)

            def loop(consumer: StreamConsumer = consumer) -> None:
                try:
                    consumer.run(self._stopping)
                except Exception as exc:
                    log.exception("event consumer loop died", group=consumer.group)
                    if not self._stopping.is_set():
                        with contextlib.suppress(ActorDead):
                            tell(me, ConsumerCrashed(error=repr(exc)))

            thread = threading.Thread(target=loop, name=f"event-consumer-{group.name}",
                                      daemon=True)
            thread.start()
            self._threads.append(thread)
            log.info("event consumer started", consumer=consumer.consumer, group=group.name,
                     stream=events.stream)

    def post_stop(self) -> None:
        self._stopping.set()
        for thread in self._threads:
            thread.join(self._settings.events.read_block_ms / 1000 + 10)
        if self._client is not None:
            self._client.close()

    def handle(self, message: Any) -> Any:
        match message:
            case ConsumerCrashed(error=error):
                raise RuntimeError(f"event consumer loop died: {error}")
        return super().handle(message)

