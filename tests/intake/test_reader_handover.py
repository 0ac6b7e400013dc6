"""A partition given back while the reader is reading it: the reader says so (`reading`),
so the lease is released only once that read ended and what it returned is pending in the
log for the next owner's resume — never left for its stale sweep, after later entries."""

from __future__ import annotations

import threading
from collections.abc import Sequence

from tests.support.waiting import ASK, eventually
from yabot.intake import Delivery, IntakeEntry, IntakeReader


class BlockingIntake:
    """An intake whose first read waits until the test releases it and returns one entry of
    the first partition read; later reads find nothing."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        self.closed = threading.Event()
        self.reads: list[list[int]] = []

    def append(self, entries: Sequence[IntakeEntry]) -> None:
        raise AssertionError("not used")

    def resume(self, partition: int) -> list[Delivery]:
        return []

    def claim_stale(self, partition: int, min_idle: float) -> list[Delivery]:
        return []

    def read(self, partitions: Sequence[int], count: int, block: float) -> list[Delivery]:
        self.reads.append(list(partitions))
        if len(self.reads) > 1:
            self.closed.wait(block)
            return []
        self.entered.set()
        self.release.wait(ASK)
        return [Delivery(entry_id="1-0", entry=IntakeEntry(
            partition=partitions[0], key=7, body='{"update_id": 1}'))]

    def ack(self, deliveries: Sequence[Delivery]) -> None:
        pass

    def lag(self, partition: int) -> int:
        return 0

    def close(self) -> None:
        self.closed.set()
        self.release.set()


def test_a_partition_being_read_is_reported_until_the_read_ended() -> None:
    intake = BlockingIntake()
    delivered: list[Delivery] = []
    reader = IntakeReader(intake, lambda: [3, 5], delivered.append, read_block=0.01,
                          stale_after=3600)
    reader.start()
    try:
        assert intake.entered.wait(ASK)
        assert reader.reading(3)
        assert reader.reading(5)
        assert not reader.reading(4)
        intake.release.set()
        eventually(lambda: len(delivered) >= 1, "the read's entry handed out")
        # Handed out before the read counts as ended: a release waits for it in `busy`.
        assert delivered[0].entry.partition == 3
    finally:
        intake.close()
        reader.stop()
    assert not reader.reading(3)


def test_a_partition_given_back_before_the_read_is_not_read() -> None:
    intake = BlockingIntake()
    looks = {"count": 0}

    def owned() -> list[int]:
        # The first look (before resuming and sweeping) still has 5; by the look right
        # before the read, 5 was given back.
        looks["count"] += 1
        return [3, 5] if looks["count"] == 1 else [3]

    reader = IntakeReader(intake, owned, lambda delivery: None, read_block=0.01,
                          stale_after=3600)
    reader.start()
    try:
        assert intake.entered.wait(ASK)
        assert intake.reads[0] == [3]
    finally:
        intake.close()
        reader.stop()
