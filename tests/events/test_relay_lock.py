"""One outbox relay at a time across processes (`yabot.cluster.relay_lock`): relays of
several processes on one outbox send each row once and in order; a holder that died is taken
over once its lock runs out; a relay that loses the lock mid-drain stops."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import redis
from sqlalchemy import Engine

from tests.events.test_relay import event_settings, store, stream_seqs
from tests.support.redis_server import no_retry
from tests.support.waiting import eventually
from yabot.cluster.relay_lock import RelayLock
from yabot.events.counters import EventCounters
from yabot.events.outbox import OutboxEntry, SqlOutbox
from yabot.events.publisher import connect_redis
from yabot.events.relay import OutboxRelay, RedisStreamSink
from yabot.stores.engine import make_engine
from yabot.stores.tables import metadata

TTL = 60.0  # never runs out by itself here: a test that needs it gone expires it


def relay_with_lock(url: str, engine: Engine, stream: str, name: str
                    ) -> tuple[OutboxRelay, RelayLock]:
    settings = event_settings(stream)
    client = connect_redis(url, settings)
    lock = RelayLock(client, f"{stream}:relay-lock", name, TTL)
    return OutboxRelay(SqlOutbox(lambda: engine), RedisStreamSink(client, settings), settings,
                       counters=EventCounters(), exclusive=lock), lock


def test_relays_of_three_processes_send_every_row_once_and_in_order(
    local_redis: tuple[str, str], tmp_path: Path
) -> None:
    url, prefix = local_redis
    stream = prefix + "events"
    path = f"sqlite:///{tmp_path / 'events.sqlite3'}"
    writer = make_engine(path)
    metadata.create_all(writer)
    engines = [make_engine(path) for _ in range(3)]  # one per "process"
    relays = [relay_with_lock(url, e, stream, f"p{n}") for n, e in enumerate(engines)]
    total, chunk = 300, 20
    written = threading.Event()

    def write() -> None:
        for start in range(1, total + 1, chunk):
            store(writer, stream, 9, chunk, start=start)
        written.set()

    def relay(relay: OutboxRelay) -> int:
        sent = 0
        while not written.is_set() or SqlOutbox(lambda: writer).count():
            sent += relay.drain()  # every process woken by every commit, at once
        return sent

    try:
        with ThreadPoolExecutor(max_workers=4) as pool:
            writing = pool.submit(write)
            sending = [pool.submit(relay, r) for r, _ in relays]
            writing.result()
            sent = [future.result() for future in sending]
        client = redis.Redis.from_url(url, retry=no_retry())
        assert stream_seqs(client, stream) == list(range(1, total + 1))
        assert sum(sent) == total
        assert sum(lock.acquired for _, lock in relays) >= 1
    finally:
        for engine in [writer, *engines]:
            engine.dispose()


def test_a_relay_that_died_holding_the_lock_is_taken_over_when_the_lock_runs_out(
    local_redis: tuple[str, str], engine: Engine
) -> None:
    url, prefix = local_redis
    stream = prefix + "events"
    client = redis.Redis.from_url(url, retry=no_retry())
    dead = RelayLock(client, f"{stream}:relay-lock", "dead", TTL)
    assert dead.acquire()  # and never renews nor gives it back
    relay, lock = relay_with_lock(url, engine, stream, "alive")
    store(engine, stream, 4, 5)

    assert relay.drain() == 0  # another process holds it: the rows wait in the outbox
    assert SqlOutbox(lambda: engine).count() == 5
    client.pexpire(f"{stream}:relay-lock", 1)  # the dead holder's TTL runs out
    sent: list[int] = []

    def drained() -> bool:
        sent.append(relay.drain())
        return sum(sent) == 5

    eventually(drained, "the live relay took the lock over and sent the rows")
    assert stream_seqs(client, stream) == [1, 2, 3, 4, 5]
    assert lock.acquired >= 1
    assert not dead.renew()  # the dead holder, were it to resume, holds nothing


class LosesAfterOneBatch:
    """A lock another process takes over after the first batch (this one was paused)."""

    def __init__(self) -> None:
        self.renewals = 0
        self.released = False

    def acquire(self) -> bool:
        return True

    def renew(self) -> bool:
        self.renewals += 1
        return self.renewals == 1

    def release(self) -> None:
        self.released = True


class Recorder:
    name = "recorder"

    def __init__(self) -> None:
        self.batches: list[list[str]] = []

    def deliver(self, entries: Sequence[OutboxEntry]) -> None:
        self.batches.append([e.event_id for e in entries])


def test_a_relay_that_lost_the_lock_mid_drain_sends_no_further_batch(engine: Engine) -> None:
    lock, sink = LosesAfterOneBatch(), Recorder()
    settings = event_settings("events")  # 7 rows a batch
    relay = OutboxRelay(SqlOutbox(lambda: engine), sink, settings, counters=EventCounters(),
                        exclusive=lock)
    store(engine, "events", 2, 20)

    assert relay.drain() == 7
    assert len(sink.batches) == 1
    assert SqlOutbox(lambda: engine).count() == 13  # left for the relay holding it now
    assert lock.released
