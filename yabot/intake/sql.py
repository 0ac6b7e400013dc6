"""The intake as an SQL table: the embedded default (no ``REDIS_URL``), one process.

Append is one INSERT committed before the webhook answers; ack deletes the row, so the table
holds exactly what was accepted and not yet handled. After a crash every row left is pending
and is read again, in position order. Reads wake at once on an append in this process (an
in-process signal), so the single-process path never polls while it is busy.

Rows delivered and not yet acked are remembered in memory and skipped by later reads: on
PostgreSQL a row with a lower position can commit after a higher one was read, so a cursor
would miss it; filtering by what was delivered cannot.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

from sqlalchemy import Engine, delete, func, insert, select

from yabot.domain.users import utcnow
from yabot.intake.entries import Delivery, IntakeEntry
from yabot.stores.guard import StoreGuard
from yabot.stores.sql import sql_guard
from yabot.stores.tables import intake_entries


class SqlIntake:
    """`Intake` on the ``intake_entries`` table of the relational store."""

    def __init__(self, engine: Callable[[], Engine], guard: StoreGuard | None = None) -> None:
        self._engine = engine  # read on every call: a restarted store brings a new engine
        self._guard = guard or sql_guard("intake")
        self._delivered: set[int] = set()
        self._lock = threading.Lock()
        self._arrived = threading.Event()
        self._closed = False

    def append(self, entries: Sequence[IntakeEntry]) -> None:
        if not entries:
            return
        rows = [{"partition": e.partition, "user_key": e.key, "body": e.body,
                 "accepted_at": utcnow()} for e in entries]

        def write() -> None:
            with self._engine().begin() as conn:
                conn.execute(insert(intake_entries), rows)

        self._guard.run(write, "append to the intake")
        self._arrived.set()

    def resume(self, partition: int) -> list[Delivery]:
        return self._take([partition], None)

    def claim_stale(self, partition: int, min_idle: float) -> list[Delivery]:
        return []  # one process reads the table: nothing is left with another reader

    def read(self, partitions: Sequence[int], count: int, block: float) -> list[Delivery]:
        self._arrived.clear()
        found = self._take(partitions, count)
        if found or self._closed:
            return found
        self._arrived.wait(block)
        return [] if self._closed else self._take(partitions, count)

    def _take(self, partitions: Sequence[int], count: int | None) -> list[Delivery]:
        if not partitions:
            return []
        # The lock is held from the query to the filter: an ack commits its DELETE before it
        # forgets the positions (under this lock), so a row read here either is still
        # remembered as delivered or was already gone from the table — never handed out twice.
        with self._lock:
            statement = (select(intake_entries)
                         .where(intake_entries.c.partition.in_(partitions))
                         .order_by(intake_entries.c.position))
            if count is not None:
                statement = statement.limit(count + len(self._delivered))

            def read() -> list[Delivery]:
                with self._engine().connect() as conn:
                    rows = conn.execute(statement).all()
                return [Delivery(entry_id=str(row.position), entry=IntakeEntry(
                    partition=row.partition, key=row.user_key, body=row.body)) for row in rows]

            taken: list[Delivery] = []
            for delivery in self._guard.run(read, "read the intake"):
                position = int(delivery.entry_id)
                if position not in self._delivered:
                    self._delivered.add(position)
                    taken.append(delivery)
                    if count is not None and len(taken) == count:
                        break
            return taken

    def ack(self, deliveries: Sequence[Delivery]) -> None:
        positions = [int(d.entry_id) for d in deliveries]
        if not positions:
            return

        def write() -> None:
            with self._engine().begin() as conn:
                conn.execute(delete(intake_entries)
                             .where(intake_entries.c.position.in_(positions)))

        self._guard.run(write, "acknowledge intake entries")
        with self._lock:
            self._delivered.difference_update(positions)

    def lag(self, partition: int) -> int:
        def read() -> int:
            with self._engine().connect() as conn:
                return int(conn.execute(
                    select(func.count()).select_from(intake_entries)
                    .where(intake_entries.c.partition == partition)).scalar_one())

        return self._guard.run(read, "count the intake", retry=False)

    def close(self) -> None:
        self._closed = True
        self._arrived.set()
