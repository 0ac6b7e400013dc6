"""In-process delivery for the embedded default (no ``REDIS_URL``): outbox → consumer groups.

Without Redis there is no stream and no Redis consumer group; the same `ConsumerGroup`s still
see every event, in publish order, effectively once each (``processed_events``), with the
same retries and dead letters as the stream consumer. One process owns the outbox, as one
process owns the SQLite file the embedded default uses.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

import structlog
from sqlalchemy import Engine, insert

from yabot.errors import InvalidEvent
from yabot.events.counters import EventCounters, event_counters
from yabot.events.groups import ConsumerGroup, HandlerFailed, handle_once, handler_failed
from yabot.events.models import Event, parse_event
from yabot.events.outbox import OutboxEntry
from yabot.settings import EventSettings
from yabot.stores.retry import RetryPolicy, retry_call
from yabot.stores.tables import dead_letters

log = structlog.get_logger("yabot.events.local")

MAX_ERROR_TEXT = 4000
#: ``dead_letters.consumer_group`` for an outbox row that is not an event at all.
UNREADABLE = "(unreadable)"


class LocalDelivery:
    """An `OutboxSink` that runs every group's handlers for each entry, in order (groups
    with no handlers are skipped; the list is read at each delivery).

    - A group that handled an event before skips it (redelivery after a crash).
    - A handler that raises is retried ``handler_retries`` times with backoff, then the event
      is recorded in ``dead_letters`` for that group, and delivery goes on.
    - A store error is raised: the relay keeps the rows and tries again later.
    """

    def __init__(
        self,
        engine: Callable[[], Engine],
        groups: Sequence[ConsumerGroup],
        settings: EventSettings,
        *,
        counters: EventCounters = event_counters,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._engine = engine
        self._groups = groups
        self._settings = settings
        self._counters = counters
        self._sleep = sleep
        self._backoff = RetryPolicy(attempts=settings.handler_retries + 1,
                                    base_delay=settings.retry_base_delay,
                                    max_delay=settings.retry_max_delay)

    name = "in-process"

    def deliver(self, entries: Sequence[OutboxEntry]) -> None:
        for entry in entries:
            try:
                event = parse_event(entry.body)
            except InvalidEvent as exc:
                self._dead_letter(UNREADABLE, entry, exc, attempts=0)
                self._counters.incr("unparseable")
                continue
            for group in self._groups:
                if group.handlers:
                    self._process(group, event, entry)

    def _process(self, group: ConsumerGroup, event: Event, entry: OutboxEntry) -> None:
        try:
            handled = retry_call(
                lambda: handle_once(self._engine(), group.name, group.handlers, event),
                is_transient=handler_failed, policy=self._backoff, sleep=self._sleep,
                what=f"event {entry.event_id} handler of {group.name}",
                on_retry=lambda _attempt, _error: self._counters.incr("handler_retries"))
        except HandlerFailed as failed:
            self._dead_letter(group.name, entry, failed.error, attempts=self._backoff.attempts)
            return
        self._counters.incr("handled" if handled else "duplicates")

    def _dead_letter(self, group: str, entry: OutboxEntry, error: Exception,
                     attempts: int) -> None:
        text = f"{type(error).__name__}: {error}"[:MAX_ERROR_TEXT]
        with self._engine().begin() as conn:
            conn.execute(insert(dead_letters).values(
                consumer_group=group, event_id=entry.event_id[:36], stream=entry.stream,
                body=entry.body, error=text, attempts=attempts, failed_at=datetime.now(UTC),
            ))
        self._counters.incr("dead_lettered")
        log.error("event dead-lettered", event_id=entry.event_id, group=group,
                  attempts=attempts, error=text)
