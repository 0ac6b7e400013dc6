"""The relay: publishes the transactional outbox, oldest row first, from one thread.

Every event enters the system as a row of ``event_outbox`` written with its change
(`yabot.stores.outbox`); nothing on a request's path talks to Redis. The relay reads the
oldest rows, hands them to its `OutboxSink` (Redis Streams, or a sink that discards them
when no Redis is configured) and deletes them once the sink took them.

Guarantees:
- Order: rows are delivered in ``position`` order, a batch at a time; a failed batch is
  retried from its first row, so nothing overtakes an undelivered row.
- At least once: a crash between delivering and deleting delivers those rows again;
  consumers deduplicate by ``event_id``.
- One relay at a time across processes, when given a `DrainLock` (`yabot.cluster.relay_lock`:
  every process runs a relay on the same table): a drain runs only while it holds the lock,
  so rows are not sent once per process.
- A slow or dead sink costs requests nothing: the relay runs on its own thread, each sink
  call has a deadline (the Redis client's socket timeout), and after a failure the breaker
  keeps the relay away from the sink for a backoff that doubles up to a cap (with jitter),
  while events keep accumulating in the outbox.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Protocol

import redis
import structlog
from redis.typing import EncodableT, FieldT

from yabot.crashpoints import crash_point
from yabot.events.counters import EventCounters, event_counters
from yabot.events.outbox import OutboxEntry, SqlOutbox
from yabot.logs import throttled
from yabot.periodic import PeriodicThread
from yabot.settings import EventSettings
from yabot.stores.retry import RetryPolicy

log = structlog.get_logger("yabot.events.relay")


def stream_fields(event_id: str, body: str) -> dict[FieldT, EncodableT]:
    """The fields of a stream entry: the id (for tools and dead letters) and the JSON body."""
    return {"event_id": event_id, "body": body}


class OutboxSink(Protocol):
    """Where the relay delivers outbox rows. ``deliver`` returns once every entry is taken
    (then the rows are deleted) or raises (the rows stay and are offered again, in order)."""

    name: str

    def deliver(self, entries: Sequence[OutboxEntry]) -> None: ...


class RedisStreamSink:
    """XADDs each row to its stream, one pipeline per batch."""

    name = "redis"

    def __init__(self, client: redis.Redis, settings: EventSettings) -> None:
        self._client = client
        self._max_length = settings.stream_max_length

    def deliver(self, entries: Sequence[OutboxEntry]) -> None:
        pipe = self._client.pipeline(transaction=False)
        for entry in entries:
            pipe.xadd(entry.stream, stream_fields(entry.event_id, entry.body),
                      maxlen=self._max_length, approximate=True)
        pipe.execute()


class DiscardSink:
    """No Redis configured: rows are counted as dropped and deleted, so the outbox does not
    grow without bound. (An in-process consumer would be another sink.)"""

    name = "discard"

    def __init__(self, counters: EventCounters = event_counters) -> None:
        self._counters = counters

    def deliver(self, entries: Sequence[OutboxEntry]) -> None:
        self._counters.incr("dropped_no_redis", len(entries))


class DrainLock(Protocol):
    """Held around a drain so that one relay among several processes sends at a time."""

    def acquire(self) -> bool:
        """Take it if free; whether this relay holds it now."""

    def renew(self) -> bool:
        """Keep it; False when it was lost (expired, taken over)."""

    def release(self) -> None:
        """Give it back."""


class OutboxRelay:
    """Drains ``outbox`` into ``sink`` on a thread of its own (`start`/`stop`), woken by
    `wake` after a commit and every ``settings.replay_interval`` seconds anyway."""

    def __init__(
        self,
        outbox: SqlOutbox,
        sink: OutboxSink,
        settings: EventSettings,
        *,
        counters: EventCounters = event_counters,
        clock: Callable[[], float] = time.monotonic,
        exclusive: DrainLock | None = None,
    ) -> None:
        self._outbox = outbox
        self._exclusive = exclusive
        self._stopping = threading.Event()
        self.sink = sink
        self._settings = settings
        self._counters = counters
        self._clock = clock
        self._backoff = RetryPolicy(base_delay=settings.retry_base_delay,
                                    max_delay=settings.retry_max_delay)
        self._lock = threading.Lock()  # one drain at a time; never held by a request
        self._failures = 0
        self._closed_until = 0.0
        self._thread: PeriodicThread | None = None

    @property
    def breaker_open(self) -> bool:
        """True while the relay is keeping away from a sink that just failed."""
        return self._clock() < self._closed_until

    def start(self) -> OutboxRelay:
        self._thread = PeriodicThread("event-outbox-relay", self._settings.replay_interval,
                                      self.drain).start()
        self._thread.wake()  # whatever a previous process left in the outbox goes first
        return self

    def wake(self) -> None:
        """Deliver now rather than at the next interval (cheap; call it after a commit)."""
        thread = self._thread
        if thread is not None:
            thread.wake()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.stop()

    def drain(self, *, force: bool = False) -> int:
        """Deliver the outbox in batches until it is empty or the sink fails; how many rows
        were delivered. Does nothing while the breaker is open, unless ``force``."""
        if self.breaker_open and not force:
            return 0
        with self._lock:
            exclusive = self._exclusive
            if exclusive is None:
                return self._drain_batches(None)
            try:
                if not self._take_turn(exclusive):
                    return 0
            except Exception as exc:
                self._failed(exc)
                return 0
            try:
                return self._drain_batches(exclusive)
            finally:
                try:
                    exclusive.release()
                except Exception as exc:  # it expires by itself
                    throttled(log, "relay lock not given back", error=repr(exc))

    def _take_turn(self, exclusive: DrainLock) -> bool:
        """Hold ``exclusive``: at once, or within one replay interval while another process's
        relay finishes (rows committed meanwhile are sent now, not at the next interval);
        False when that relay is still at it (it sends them: it drains until empty)."""
        retry = self._settings.retry_base_delay
        for _ in range(max(1, int(self._settings.replay_interval / retry))):
            if exclusive.acquire():
                return True
            if self._stopping.wait(retry):
                return False
        return False

    def _drain_batches(self, exclusive: DrainLock | None) -> int:
        """Batch after batch until the outbox is empty, the sink fails or `stop` is called:
        a stop lets the batch being sent finish and leaves the rest in the outbox for the
        next relay. Draining a backlog to the end would outlast the supervisor's stop
        deadline (10,000 new users' events took longer), and the stores stop after it."""
        sent = 0
        while not self._stopping.is_set():
            batch = self._outbox.oldest(self._settings.replay_batch)
            if not batch:
                return sent
            crash_point("relay-before-send")
            try:
                if exclusive is not None and not exclusive.renew():
                    log.warning("relay lock lost mid-drain; another relay goes on")
                    return sent
                self.sink.deliver(batch)
            except Exception as exc:
                self._failed(exc)
                return sent
            crash_point("relay-after-send")
            self._outbox.remove([entry.position for entry in batch])
            if self._failures:
                log.info("event sink answers again; relaying the outbox",
                         sink=self.sink.name, after_failures=self._failures)
                self._failures = 0
            sent += len(batch)
            self._counters.incr("published", len(batch))
        return sent

    def _failed(self, exc: Exception) -> None:
        self._failures += 1
        # Not `retry_call`: the relay goes on with its passes and keeps away from the sink
        # until then (a breaker), for `RetryPolicy`'s ceiling.
        wait = self._backoff.ceiling(self._failures)
        self._closed_until = self._clock() + wait
        self._counters.incr("publish_failures")
        throttled(log, "event sink failed; events wait in the outbox", sink=self.sink.name,
                  error=repr(exc), retry_in_s=round(wait, 3))
