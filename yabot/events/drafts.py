"""Drafts of events for the transactional outbox: what a change will publish, before the store
knows the ``seq`` and the balance the events carry.

A service that changes a user hands the store ``drafts.of(...)`` (`yabot.stores.outbox`); the
store calls it inside the change's write with the user's next ``seq`` and balance, and stores
the events with the change. Nothing is published directly: the relay sends the outbox.

While the bot handles a Telegram update (`handling_update`, set by its middleware around the
handler), the drafts of every change to the update's sender carry the update
(`yabot.stores.outbox.HandledUpdate`): the store records it as handled in the change's
write. The actors runtime hands each message the sender's context variables, so this reaches
the user's session, and the coordinator it asks, on their own threads. A change to another
user made on the way (a transfer's credit, a gift's delivery) carries nothing: the update is
not the recipient's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from yabot.events.models import BaseEvent, BesitosTransferred, UserInteraction
from yabot.logs import current_correlation_id
from yabot.stores.outbox import EventDrafts, HandledUpdate, OutboxRecord

DEFAULT_STREAM = "yabot:events"  # `EventSettings.stream`'s default

#: One event of a change, given its ``seq`` and the user's balance after the change.
Builder = Callable[[int, int], BaseEvent]

#: The default of `ScaleSettings.handled_updates_window`.
DEFAULT_WINDOW = 256


@dataclass(frozen=True)
class Handling:
    """User ``user_id``'s Telegram update ``update_id``, being handled."""

    user_id: int
    update_id: int


_handling: ContextVar[Handling | None] = ContextVar("yabot_handling_update", default=None)


@contextmanager
def handling_update(user_id: int, update_id: int) -> Iterator[None]:
    """Within the block (and in every actor message sent from it), changes to ``user_id``
    are made for update ``update_id``."""
    token = _handling.set(Handling(user_id, update_id))
    try:
        yield
    finally:
        _handling.reset(token)


def current_update() -> Handling | None:
    """The update being handled in this context, if any."""
    return _handling.get()


def correlation_id() -> str | None:
    """The correlation id bound in the caller's context (`yabot.logs.bind_correlation_id`)."""
    value = current_correlation_id()
    return value[:128] if value is not None else None


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
    """Turns builders into `EventDrafts` for ``stream`` (thread-safe, stateless); ``window``
    is how many handled update ids each user keeps (`ScaleSettings.handled_updates_window`)."""

    def __init__(self, stream: str = DEFAULT_STREAM, window: int = DEFAULT_WINDOW) -> None:
        self.stream = stream
        self.window = window

    def of(self, *builders: Builder | None, handling: Handling | None = None,
           completes_update: bool = True) -> EventDrafts:
        """The drafts of ``builders`` (None entries skipped), in order. The events of the
        user whose update is being handled (``handling``, by default the context's:
        `handling_update`) carry it, so the store records it as handled with them.

        ``completes_update`` False: the change is a first step of the update, keyed by it so
        that doing it again changes nothing; a later step records the update, so a crash
        between the two leaves the update to its redelivery, which finishes it."""
        present = [builder for builder in builders if builder is not None]
        stream = self.stream
        # Read now: the store may call the drafts on another thread.
        handling = (handling or current_update()) if completes_update else None
        handled = (None if handling is None
                   else HandledUpdate(handling.update_id, self.window))

        def drafts(first_seq: int, balance: int) -> Sequence[OutboxRecord]:
            records = []
            for offset, builder in enumerate(present):
                built = builder(first_seq + offset, balance)
                stamp = (handled if handling is not None and built.user_id == handling.user_id
                         else None)
                records.append(OutboxRecord(str(built.event_id), stream, built.to_json(),
                                            stamp))
            return records

        return drafts
