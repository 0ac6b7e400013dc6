"""The intake contract, on the SQL table (SQLite, PostgreSQL) and on Redis Streams."""

from __future__ import annotations

import threading
import uuid
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, delete

from yabot.intake.entries import Delivery, Intake, IntakeEntry, partition_of
from yabot.intake.redis import RedisIntake
from yabot.intake.sql import SqlIntake
from yabot.stores.engine import make_engine
from yabot.stores.tables import intake_entries, metadata

PARTITIONS = 4

#: A fresh intake on the same log each call: a second process, or this one after a crash.
IntakeFactory = Callable[[], Intake]


@pytest.fixture(params=["sqlite", "postgresql", "redis"])
def intakes(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[IntakeFactory]:
    made: list[Intake] = []
    engine: Engine | None = None
    if request.param == "redis":
        url, prefix = request.getfixturevalue("local_redis")

        def build() -> Intake:
            made.append(RedisIntake(url, prefix.rstrip(":"), f"c-{uuid.uuid4().hex[:6]}",
                                    PARTITIONS))
            return made[-1]
    else:
        url = (f"sqlite:///{tmp_path / 'intake.sqlite3'}" if request.param == "sqlite"
               else request.getfixturevalue("postgres_url"))
        engine = make_engine(url)
        metadata.create_all(engine)
        with engine.begin() as conn:
            conn.execute(delete(intake_entries))
        the_engine = engine

        def build() -> Intake:
            made.append(SqlIntake(lambda: the_engine))
            return made[-1]

    yield build
    for intake in made:
        intake.close()
    if engine is not None:
        # The PostgreSQL schema is shared by this worker's tests: leave no tables behind.
        metadata.drop_all(engine)
        engine.dispose()


EVERY = list(range(PARTITIONS))


def entry(key: int, n: int) -> IntakeEntry:
    return IntakeEntry(partition=partition_of(key, PARTITIONS), key=key,
                       body=f'{{"update_id": {n}}}')


def bodies(deliveries: list[Delivery]) -> list[str]:
    return [d.entry.body for d in deliveries]


def read_all(intake: object, expected: int) -> list[Delivery]:
    found: list[Delivery] = []
    for _ in range(50):
        if len(found) >= expected:
            break
        found += intake.read(EVERY, 100, 0.05)  # type: ignore[attr-defined]
    return found


def test_a_partition_is_read_in_append_order_and_each_entry_once(intakes: IntakeFactory
                                                                  ) -> None:
    intake = intakes()
    appended = [entry(7, n) for n in range(30)]
    for one in appended:
        intake.append([one])
    found = read_all(intake, 30)
    assert bodies(found) == [e.body for e in appended]
    assert intake.read(EVERY, 100, 0.05) == []  # handed out once, acked or not


def test_the_partition_is_a_stable_hash_of_the_user() -> None:
    # CRC-32 of the decimal id, as documented: any process (and an operator) computes it alike.
    assert partition_of(123456789, 16) == zlib.crc32(b"123456789") % 16
    assert partition_of(None, 16) == 0
    assert {partition_of(user, 16) for user in range(1000)} == set(range(16))


def test_acknowledged_entries_are_never_handed_out_again(intakes: IntakeFactory) -> None:
    intake = intakes()
    intake.append([entry(1, n) for n in range(5)])
    found = read_all(intake, 5)
    intake.ack(found)
    intake.ack(found[:2])  # a second ack does nothing
    intake.close()
    after_crash = intakes()
    assert [d for p in EVERY for d in after_crash.resume(p)] == []
    assert after_crash.read(EVERY, 100, 0.05) == []


def test_after_a_crash_pending_entries_are_resumed_in_order_before_new_ones(
    intakes: IntakeFactory
) -> None:
    first = intakes()
    first.append([entry(3, n) for n in range(10)])
    delivered = read_all(first, 10)
    first.ack(delivered[:4])  # handled 4 of 10, then "crashed"
    first.append([entry(3, n) for n in range(10, 12)])  # accepted, never read
    partition = partition_of(3, PARTITIONS)
    successor = intakes()
    resumed = successor.resume(partition)
    # Redis resumes what was delivered (4..9) and reads the rest as new; the SQL table
    # resumes every row left. Either way: everything not acked, once, in order.
    assert bodies(resumed)[:6] == [entry(3, n).body for n in range(4, 10)]
    fresh = read_all(successor, 12 - 4 - len(resumed))
    assert bodies(resumed + fresh) == [entry(3, n).body for n in range(4, 12)]


def test_a_reader_reads_only_the_partitions_it_names(intakes: IntakeFactory) -> None:
    intake = intakes()
    users = {partition_of(u, PARTITIONS): u for u in range(100)}
    intake.append([entry(user, user) for user in users.values()])
    mine = intake.read([0, 1], 100, 0.05)
    assert {d.entry.partition for d in mine} == {0, 1}
    theirs = read_all(intake, 2)
    assert {d.entry.partition for d in theirs} == {2, 3}


def test_concurrent_appends_lose_nothing_and_keep_each_writers_order(
    intakes: IntakeFactory
) -> None:
    intake = intakes()

    def write(user: int) -> None:
        for n in range(25):
            intake.append([entry(user, n)])

    threads = [threading.Thread(target=write, args=(user,)) for user in (11, 12, 13, 14)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    found = read_all(intake, 100)
    assert len(found) == 100
    for user in (11, 12, 13, 14):
        assert [d.entry.body for d in found if d.entry.key == user] == [
            entry(user, n).body for n in range(25)]


def test_a_blocked_read_returns_when_an_entry_is_appended(intakes: IntakeFactory) -> None:
    intake = intakes()
    got: list[Delivery] = []
    reader = threading.Thread(target=lambda: got.extend(intake.read(EVERY, 10, 30.0)))
    reader.start()
    writer = intakes()
    writer.append([entry(5, 1)])
    intake.append([entry(5, 2)])
    reader.join(30.0)
    assert not reader.is_alive()
    assert got  # woken by the append, long before its 30 s block
