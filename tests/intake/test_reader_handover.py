"""A partition given back while the reader is reading it: the reader says so (`reading`),
so the lease is released only once that read ended and what it returned is pending in the
log for the next owner's resume — never left for its stale sweep, after later entries.
The same holds for the resume of a newly owned partition, and a partition lost while it was
being resumed is resumed again when it comes back."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

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


class BlockingResume(BlockingIntake):
    """An intake whose first resume waits until the test releases it."""

    def __init__(self) -> None:
        super().__init__()
        self.resumes: list[int] = []
        self.resuming = threading.Event()
        self.resumed = threading.Event()

    def resume(self, partition: int) -> list[Delivery]:
        self.resumes.append(partition)
        if len(self.resumes) == 1:
            self.resuming.set()
            self.resumed.wait(ASK)
        return []

    def read(self, partitions: Sequence[int], count: int, block: float) -> list[Delivery]:
        self.reads.append(list(partitions))
        self.closed.wait(block)
        return []


@contextmanager
def resuming_partition_3() -> Iterator[tuple[BlockingResume, IntakeReader]]:
    """A reader owning partition 3, its first resume held until ``intake.resumed`` is set."""
    intake = BlockingResume()
    reader = IntakeReader(intake, lambda: [3], lambda delivery: None, read_block=0.01,
                          stale_after=3600)
    reader.start()
    try:
        yield intake, reader
    finally:
        intake.close()
        intake.resumed.set()
        reader.stop()


def test_a_partition_being_resumed_is_reported_until_the_resume_ended() -> None:
    with resuming_partition_3() as (intake, reader):
        assert intake.resuming.wait(ASK)
        # A give-back now waits: released, the next owner's resume could run before this
        # one and leave what this one claims to its stale sweep.
        assert reader.reading(3)
        assert intake.reads == []  # nothing new is read before the pending entries
        intake.resumed.set()
        eventually(lambda: bool(intake.reads), "the read after the resume")


def test_a_partition_lost_during_its_resume_is_resumed_again_when_it_comes_back() -> None:
    with resuming_partition_3() as (intake, reader):
        assert intake.resuming.wait(ASK)
        reader.forget([3])  # lost (and taken back) while the first resume ran
        intake.resumed.set()
        eventually(lambda: len(intake.resumes) >= 2, "partition 3 resumed again")
    assert intake.resumes[:2] == [3, 3]
