"""Consumer groups: who reacts to events, each group with its own handlers and its own record
of what it handled, so one group can be added, replayed or fail without touching the others."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine

from yabot.events.models import BaseEvent
from yabot.stores.sql import insert_if_absent
from yabot.stores.tables import processed_events

#: A handler gets the event and the open transaction that records it as processed: effects
#: written on ``conn`` commit together with that record, or not at all.
Handler = Callable[[Any, Connection], None]


class Handlers:
    """Handlers by event class; several per class run in registration order, in one
    transaction. Register before the processor starts."""

    def __init__(self) -> None:
        self._by_type: dict[str, list[Handler]] = {}

    def on(self, event_class: type[BaseEvent], handler: Handler) -> None:
        event_type = event_class.model_fields["type"].default
        self._by_type.setdefault(event_type, []).append(handler)

    def for_event(self, event: BaseEvent) -> list[Handler]:
        return self._by_type.get(str(getattr(event, "type", "")), [])

    def __bool__(self) -> bool:
        """False while nothing is registered: such a group is not run at all."""
        return bool(self._by_type)


@dataclass(frozen=True)
class ConsumerGroup:
    """A named set of handlers. The name is the Redis consumer group and the key under which
    ``processed_events`` remembers what the group handled."""

    name: str
    handlers: Handlers = field(default_factory=Handlers)


class HandlerFailed(Exception):
    """A handler raised (as opposed to the stores failing around it)."""

    def __init__(self, error: Exception) -> None:
        super().__init__(repr(error))
        self.error = error


def handler_failed(error: BaseException) -> bool:
    """What consumers retry (`retry_call`'s ``is_transient``): a handler's failure, which may
    be a passing outage behind it; the stores failing around it are not retried here."""
    return isinstance(error, HandlerFailed)


def handle_once(engine: Engine, group: str, handlers: Handlers, event: BaseEvent) -> bool:
    """Run ``handlers`` for ``event`` and record it as processed by ``group``, in one
    transaction; False (and nothing run) if the group handled it before.

    A handler's exception is raised as `HandlerFailed` and rolls the whole transaction back;
    a store error is raised as it is (the event was not handled, try again later).
    """
    with engine.begin() as conn:
        fresh = insert_if_absent(conn, processed_events, {
            "consumer_group": group,
            "event_id": str(event.event_id),
            "processed_at": datetime.now(UTC),
        })
        if not fresh:
            return False
        for handler in handlers.for_event(event):
            try:
                handler(event, conn)
            except Exception as exc:
                raise HandlerFailed(exc) from exc
    return True
