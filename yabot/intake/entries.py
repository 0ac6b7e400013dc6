"""What the durable intake holds, where an entry goes, and the interface every intake keeps."""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from typing import Protocol

from pydantic import BaseModel, ConfigDict


def partition_of(key: int | None, partitions: int) -> int:
    """The partition of a user (or chat) id: a stable hash, the same in every process and
    across restarts (Python's `hash` is not, for strings). No key (an update from nobody)
    goes to partition 0."""
    if key is None:
        return 0
    return zlib.crc32(str(key).encode()) % partitions


class IntakeEntry(BaseModel):
    """One accepted input: a Telegram update's JSON, for the lane of ``key`` (the user)."""

    model_config = ConfigDict(frozen=True)

    partition: int
    key: int | None
    body: str


class Delivery(BaseModel):
    """An entry handed to a reader; `Intake.ack` it once it is handled. ``entry_id`` is the
    intake's own id (a stream id, a row position)."""

    model_config = ConfigDict(frozen=True)

    entry_id: str
    entry: IntakeEntry


class Intake(Protocol):
    """A durable log of accepted inputs, one ordered log per partition.

    Guarantees, for every implementation:
    - `append` returns only once the entry is stored durably (a crash after it loses nothing),
      and raises `yabot.errors.StoreUnavailable` when it could not store it.
    - `read` hands each new entry to this reader once, in append order per partition.
    - An entry stays pending until `ack`; after a crash or a change of owner, `resume` hands
      the partition's pending entries (in order) to the reader that calls it.
    - `ack` of an entry already acknowledged does nothing.
    """

    def append(self, entries: Sequence[IntakeEntry]) -> None:
        """Store ``entries`` durably, in this order."""

    def resume(self, partition: int) -> list[Delivery]:
        """Take over ``partition``'s pending entries (delivered before and never acked), in
        order; call it before reading the partition's new entries."""

    def claim_stale(self, partition: int, min_idle: float) -> list[Delivery]:
        """Take over ``partition``'s entries handed out at least ``min_idle`` seconds ago
        and never acknowledged (a reader that lost the partition left them); an intake with
        a single reader has none."""

    def read(self, partitions: Sequence[int], count: int, block: float) -> list[Delivery]:
        """Up to ``count`` new entries of ``partitions``, waiting up to ``block`` seconds
        when there are none."""

    def ack(self, deliveries: Sequence[Delivery]) -> None:
        """Mark ``deliveries`` handled: they are never handed out again."""

    def lag(self, partition: int) -> int:
        """Entries of ``partition`` accepted and not yet acknowledged."""

    def close(self) -> None:
        """Release connections; wakes a blocked `read`."""
