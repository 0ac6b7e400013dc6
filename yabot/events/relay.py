"""Moving the outbox on: the relay reads it oldest first and hands batches to a sink.

The sink decides where events go: Redis (the stream the consumer groups read) or, in the
embedded default without Redis, the consumer groups themselves in this process
(`yabot.events.local.LocalDelivery`). Either way a row leaves the outbox only after its sink
took it, so a crash or an outage between the two repeats a delivery, never loses one.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Protocol

from yabot.events.outbox import OutboxEntry, SqlOutbox


class OutboxSink(Protocol):
    """Where the relay delivers. ``deliver`` returns once every entry is taken care of
    (delivered, or given up on and recorded as a dead letter); raising means "not delivered,
    keep the rows": the relay stops and the next drain offers the same entries again."""

    def deliver(self, entries: Sequence[OutboxEntry]) -> None: ...


class OutboxRelay:
    """Drains ``outbox`` into ``sink`` in publish order, one batch at a time.

    At least once: entries are removed only after ``deliver`` returned, so a crash in between
    delivers them again (sinks deduplicate by event id). One drain at a time (a lock), so two
    threads never deliver the same rows concurrently within a process.
    """

    def __init__(self, outbox: SqlOutbox, sink: OutboxSink, batch: int) -> None:
        self._outbox = outbox
        self._sink = sink
        self._batch = batch
        self._lock = threading.Lock()

    def drain(self) -> int:
        """Deliver until the outbox is empty; return how many entries left it."""
        moved = 0
        with self._lock:
            while True:
                entries = self._outbox.oldest(self._batch)
                if not entries:
                    return moved
                self._sink.deliver(entries)
                self._outbox.remove([entry.position for entry in entries])
                moved += len(entries)
