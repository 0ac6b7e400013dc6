"""`IntakeReader`'s acknowledgements when the intake fails to take them."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from sqlalchemy import Engine

from tests.support.waiting import eventually
from yabot.intake.entries import Delivery, IntakeEntry, partition_of
from yabot.intake.reader import ACK_POLICY, IntakeReader
from yabot.intake.sql import SqlIntake
from yabot.stores.engine import make_engine
from yabot.stores.tables import metadata

PARTITIONS = 4
EVERY = list(range(PARTITIONS))


class AckFails(SqlIntake):
    """A SQL intake whose first ``failures`` acks raise (a dropped connection)."""

    def __init__(self, engine: Engine, failures: int) -> None:
        super().__init__(lambda: engine)
        self.failures = failures
        self.ack_calls = 0

    def ack(self, deliveries: Sequence[Delivery]) -> None:
        self.ack_calls += 1
        if self.ack_calls <= self.failures:
            raise ConnectionError("intake went away")
        super().ack(deliveries)


def _engine(tmp_path: Path) -> Engine:
    engine = make_engine(f"sqlite:///{tmp_path / 'intake.sqlite3'}")
    metadata.create_all(engine)
    return engine


def _handle_all(intake: SqlIntake, count: int) -> IntakeReader:
    """A started reader that reports every entry it hands out as done; returns once it has
    handed out ``count``."""
    intake.append([IntakeEntry(partition=partition_of(7, PARTITIONS), key=7,
                               body=f'{{"update_id": {n}}}') for n in range(count)])
    handed: list[Delivery] = []
    reader: IntakeReader

    def deliver(delivery: Delivery) -> None:
        handed.append(delivery)
        reader.done(delivery)

    reader = IntakeReader(intake, lambda: EVERY, deliver, read_block=0.05)
    reader.start()
    eventually(lambda: len(handed) == count, "every entry handed out")
    return reader


def _pending(engine: Engine) -> list[Delivery]:
    """What a process starting on the same log would be handed out again."""
    fresh = SqlIntake(lambda: engine)
    try:
        return [delivery for p in EVERY for delivery in fresh.resume(p)]
    finally:
        fresh.close()


def test_a_failing_ack_is_retried_until_the_intake_takes_it(tmp_path: Path) -> None:
    engine = _engine(tmp_path)
    intake = AckFails(engine, failures=2)
    reader = _handle_all(intake, 5)
    eventually(lambda: intake.ack_calls >= 3, "the ack retried past two failures")
    reader.stop()
    assert _pending(engine) == []


def test_an_ack_that_keeps_failing_leaves_the_entries_to_be_handed_out_again(
    tmp_path: Path,
) -> None:
    engine = _engine(tmp_path)
    intake = AckFails(engine, failures=1_000)
    reader = _handle_all(intake, 5)
    eventually(lambda: intake.ack_calls >= ACK_POLICY.attempts, "every ack attempt made")
    reader.stop()
    assert len(_pending(engine)) == 5  # nothing lost: a restart hands them out again
