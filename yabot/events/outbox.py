"""The ``event_outbox`` table as the relay reads it: every event, in the order it was stored.

Rows are written by the stores with the change they describe (`yabot.stores.outbox`), read
oldest first by the relay, and removed once delivered.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Engine, delete, func, select

from yabot.stores.outbox import OutboxRecord
from yabot.stores.sql import append_outbox, insert_if_absent
from yabot.stores.tables import event_outbox


@dataclass(frozen=True)
class OutboxEntry:
    position: int
    event_id: str
    stream: str
    body: str


class SqlOutbox:
    """``event_outbox`` rows: appended in publish order, read oldest first, removed once sent.

    ``engine`` is a callable so a restarted SQL store's new engine is used, never a stale one.
    Appending the same ``event_id`` twice keeps the first row.
    """

    def __init__(self, engine: Callable[[], Engine]) -> None:
        self._engine = engine

    def append(self, event_id: str, stream: str, body: str) -> None:
        with self._engine().begin() as conn:
            insert_if_absent(conn, event_outbox, {
                "event_id": event_id, "stream": stream, "body": body,
                "created_at": datetime.now(UTC),
            })

    def append_records(self, records: Sequence[OutboxRecord]) -> None:
        """Append ``records`` in one transaction (skipping ids already there)."""
        append_outbox(self._engine(), records)

    def oldest(self, limit: int) -> list[OutboxEntry]:
        query = select(
            event_outbox.c.position, event_outbox.c.event_id, event_outbox.c.stream,
            event_outbox.c.body,
        ).order_by(event_outbox.c.position).limit(limit)
        with self._engine().connect() as conn:
            return [OutboxEntry(*row) for row in conn.execute(query)]

    def remove(self, positions: Sequence[int]) -> None:
        if not positions:
            return
        with self._engine().begin() as conn:
            conn.execute(delete(event_outbox).where(event_outbox.c.position.in_(positions)))

    def count(self) -> int:
        with self._engine().connect() as conn:
            return int(conn.execute(select(func.count()).select_from(event_outbox)).scalar_one())
