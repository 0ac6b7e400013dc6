"""Drafts of events for the transactional outbox: what a change will publish, before the store
knows the ``seq`` and the balance the events carry.

A service that changes a user hands the store ``drafts.of(...)`` (`yabot.stores.outbox`); the
store calls it inside the change's write with the user's next ``seq`` and balance, and stores
the events with the change. Nothing is published directly: the relay sends the outbox.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import structlog

from yabot.events.models import BaseEvent, BesitosTransferred, UserInteraction
from yabot.stores.outbox import EventDrafts, OutboxRecord

DEFAULT_STREAM = "yabot:events"  # `EventSettings.stream`'s default

#: One event of a change, given its ``seq`` and the user's balance after the change.
Builder = Callable[[int, int], BaseEvent]


def correlation_id() -> str | None:
    """The request's correlation id, bound in the caller's structlog context (if any)."""
    value = structlog.contextvars.get_contextvars().get("correlation_id")
    return value[:128] if isinstance(value, str) else None


def event(kind: type[BaseEvent], user_id: int, **fields: Any) -> Builder:
    """A builder of ``kind(user_id=…, seq=…, correlation_id=…, **fields)``; the correlation
    id is the caller's, read now (the store may call the builder in another thread)."""
    correlation = correlation_id()

    def build(seq: int, balance: int) -> BaseEvent:
        return kind(user_id=user_id, seq=seq, correlation_id=correlation, **fields)

    return build


def besitos(user_id: int, amount: int, ledger_key: str, reason: str) -> Builder:
    """`BesitosTransferred` with the balance the store read back after the change."""
    correlation = correlation_id()

    def build(seq: int, balance: int) -> BaseEvent:
        return BesitosTransferred(user_id=user_id, seq=seq, amount=amount,
                                  balance_after=balance, ledger_key=ledger_key, reason=reason,
                                  correlation_id=correlation)

    return build


def interaction(user_id: int, action: str, **details: str) -> Builder:
    return event(UserInteraction, user_id, action=action, details=details)


class Drafts:
    """Turns builders into `EventDrafts` for ``stream`` (thread-safe, stateless)."""

    def __init__(self, stream: str = DEFAULT_STREAM) -> None:
        self.stream = stream

    def of(self, *builders: Builder | None) -> EventDrafts:
        """The drafts of ``builders`` (None entries skipped), in order."""
        present = [builder for builder in builders if builder is not None]
        stream = self.stream

        def drafts(first_seq: int, balance: int) -> Sequence[OutboxRecord]:
            records = []
            for offset, builder in enumerate(present):
                built = builder(first_seq + offset, balance)
                records.append(OutboxRecord(str(built.event_id), stream, built.to_json()))
            return records

        return drafts
