"""Events as a test sees them: a sink the outbox relay delivers into, in order."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

from yabot.events.models import BaseEvent, parse_event
from yabot.events.outbox import OutboxEntry


class RecordingSink:
    """An `OutboxSink` that parses every delivered row and hands it to ``record`` (e.g. a
    list's ``append``); set it as ``runtime.events.sink`` before the runtime starts."""

    name = "recording"

    def __init__(self, record: Callable[[BaseEvent], object]) -> None:
        self._record = record
        self._lock = threading.Lock()

    def deliver(self, entries: Sequence[OutboxEntry]) -> None:
        with self._lock:
            for entry in entries:
                self._record(parse_event(entry.body))


class FailingSink:
    """An `OutboxSink` whose destination is down: every delivery raises."""

    name = "failing"

    def deliver(self, entries: Sequence[OutboxEntry]) -> None:
        raise ConnectionError("event sink down")
