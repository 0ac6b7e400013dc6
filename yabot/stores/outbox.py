"""The transactional outbox as the stores see it: events written with the change they describe.

A repository that changes a user writes that change's events into ``event_outbox`` in the
same transaction (the `sql` backend) or parks them in the user's document in the same update
(the `mongo` backend, then copied to ``event_outbox`` idempotently and unparked). So a change
is never stored without its events, nor an event without its change. The relay
(`yabot.events.relay`) publishes the table's rows in ``position`` order.

The stores do not know event types: a caller hands them `EventDrafts`, which the repository
calls once it knows the user's next ``seq`` (the ``event_seq`` counter kept with the user's
record and advanced in the same write) and the user's balance after the change.

A change made for a Telegram update carries that update (`HandledUpdate`, on its records): the
repository adds its id to the user's window of handled updates in the same write, so the
update is never taken for unhandled once its change is stored (a redelivery after a crash
is skipped rather than applied again).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class HandledUpdate:
    """The Telegram update a change is made for, and how many update ids the user's window
    keeps: the store records ``update_id`` as handled in the change's own write."""

    update_id: int
    window: int


@dataclass(frozen=True)
class OutboxRecord:
    """One event as the outbox stores it: its id, the stream it goes to, its JSON; and, not
    stored with it, the update its change was made for (`HandledUpdate`), if any."""

    event_id: str
    stream: str
    body: str
    handled: HandledUpdate | None = field(default=None, compare=False)

    def as_document(self) -> dict[str, Any]:
        return {"event_id": self.event_id, "stream": self.stream, "body": self.body}


#: Builds a change's events from the first ``seq`` they take and the user's balance after the
#: change. Called inside the change's write, possibly more than once (a retried transaction),
#: so it must have no side effects. The records take ``first_seq``, ``first_seq + 1``, ….
EventDrafts = Callable[[int, int], Sequence[OutboxRecord]]


def handled_by(records: Iterable[OutboxRecord]) -> HandledUpdate | None:
    """The update the change of ``records`` was made for (the first record that names one)."""
    return next((record.handled for record in records if record.handled is not None), None)


def handled_window(handled: Sequence[int], update_id: int, window: int) -> list[int] | None:
    """The window ``handled`` (oldest first) with ``update_id`` recorded: it becomes the newest
    (once, wherever it was), and only the newest ``window`` ids are kept. None when it is the
    newest already (a second change of one update, or its record after its change): nothing
    to write."""
    if handled and int(handled[-1]) == update_id:
        return None
    kept = [int(known) for known in handled if int(known) != update_id]
    return [*kept, update_id][-window:]


def no_events(first_seq: int, balance: int) -> Sequence[OutboxRecord]:
    """Drafts for a change that has no event (tools, seeding, tests of the stores alone)."""
    return ()


@dataclass(frozen=True)
class PendingTransfer:
    """The second half of a transfer (``sku`` None: credit ``amount`` besitos under
    ``credit_key``) or of a gift (put ``sku`` into the recipient's inventory), recorded in the
    transaction that debited the sender under ``key`` and removed in the one that finishes
    it. One still recorded after a while is a workflow a crash interrupted."""

    key: str
    from_user_id: int
    to_user_id: int
    amount: int
    credit_key: str
    created_at: datetime
    sku: str | None = None
    request: str | None = None
    reason: str = ""

    def as_document(self) -> dict[str, Any]:
        return {"key": self.key, "from_user_id": self.from_user_id,
                "to_user_id": self.to_user_id, "amount": self.amount,
                "credit_key": self.credit_key, "created_at": self.created_at,
                "sku": self.sku, "request": self.request, "reason": self.reason}
