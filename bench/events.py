"""Event bus: the rate of storing an event in the outbox (what every change pays for its
events) vs raw redis-py XADD, and stored → handled latency through the relay and the consumer
at a steady 1,000 events/s.

Needs a Redis server: ``BENCH_REDIS_URL`` (default ``redis://127.0.0.1:6379/0``); keys live
under a per-run prefix and are deleted afterwards. SQL is a SQLite file in a temp directory.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from sqlalchemy import Connection

from bench.report import Check, Measurement, Report, interleaved, summarise
from yabot.events.counters import EventCounters
from yabot.events.models import UserInteraction
from yabot.events.outbox import SqlOutbox
from yabot.events.processor import Handlers, StreamConsumer
from yabot.events.publisher import connect_redis
from yabot.events.relay import OutboxRelay, RedisStreamSink, stream_fields
from yabot.settings import EventSettings
from yabot.stores.engine import make_engine
from yabot.stores.outbox import OutboxRecord
from yabot.stores.tables import metadata

STORED = "event stored in the outbox"


def _store(outbox: SqlOutbox, stream: str, event: UserInteraction) -> None:
    outbox.append_records([OutboxRecord(str(event.event_id), stream, event.to_json())])

REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
STEADY_RATE = 1000  # events per second


def run(quick: bool = False) -> Report:
    client = redis.Redis.from_url(REDIS_URL, retry=Retry(NoBackoff(), 0))
    try:
        client.ping()
    except redis.exceptions.ConnectionError as exc:
        raise SystemExit(f"bench events needs Redis at {REDIS_URL} ({exc!r}); "
                         "start it or set BENCH_REDIS_URL") from None
    prefix = f"yabot-bench:{uuid.uuid4().hex[:8]}:"
    with tempfile.TemporaryDirectory() as tmp:
        try:
            report = Report("events")
            report.measurements += _publish_rates(client, prefix, Path(tmp), quick)
            report.measurements.append(_handled_latency(client, prefix, Path(tmp), quick))
        finally:
            for key in client.scan_iter(match=prefix + "*"):
                client.delete(key)
            client.close()
    by_name = {m.name: m for m in report.measurements}
    raw, bus = by_name["raw redis-py XADD"].median_us, by_name[STORED].median_us
    assert raw is not None
    assert bus is not None
    ratio = raw / bus  # rate ratio = inverse of the per-call time ratio
    report.checks.append(
        Check("outbox store rate / raw XADD rate (medians)", round(ratio, 3), ">= 0.2",
              ratio >= 0.2)
    )
    return report


def _publish_rates(client: redis.Redis, prefix: str, tmp: Path, quick: bool
                   ) -> list[Measurement]:
    rounds, per_round = (5, 300) if quick else (20, 1000)
    settings = EventSettings(stream=prefix + "bus")
    engine = make_engine(f"sqlite:///{tmp / 'publish.sqlite3'}")
    metadata.create_all(engine)
    outbox = SqlOutbox(lambda: engine)
    seqs = iter(range(1, 10**9))
    template = UserInteraction(user_id=1, seq=1, action="tap")
    raw_body = template.to_json()
    raw_id = str(template.event_id)

    def raw_xadd() -> None:
        # The baseline does what a caller of redis-py would: XADD a ready JSON body, capped.
        client.xadd(prefix + "raw", stream_fields(raw_id, raw_body),
                    maxlen=settings.stream_max_length, approximate=True)

    def bus_publish() -> None:
        # Includes building and serialising the event, as a change's drafts do; the row is
        # committed on its own here (a change commits it with its own write).
        _store(outbox, settings.stream, UserInteraction(user_id=1, seq=next(seqs),
                                                        action="tap"))

    samples = interleaved(
        {"raw redis-py XADD": raw_xadd, STORED: bus_publish},
        rounds, per_round,
    )
    engine.dispose()
    measurements = []
    for name, values in samples.items():
        m = summarise(name, values)
        assert m.median_us is not None
        measurements.append(Measurement(m.name, m.median_us, m.p99_us,
                                        per_second=1e6 / m.median_us))
    return measurements


def _handled_latency(client: redis.Redis, prefix: str, tmp: Path, quick: bool) -> Measurement:
    """Store events at a steady rate from one thread (waking the relay after each, as a
    session does); the consumer records when each is handled."""
    seconds = 2 if quick else 10
    settings = EventSettings(stream=prefix + "steady", read_block_ms=100)
    engine = make_engine(f"sqlite:///{tmp / 'steady.sqlite3'}")
    metadata.create_all(engine)
    outbox = SqlOutbox(lambda: engine)
    relay_client = connect_redis(REDIS_URL, settings)
    relay = OutboxRelay(outbox, RedisStreamSink(relay_client, settings), settings,
                        counters=EventCounters()).start()
    sent: dict[str, float] = {}
    latencies: list[float] = []
    done = threading.Event()
    total = seconds * STEADY_RATE

    def handled(event: Any, conn: Connection) -> None:
        latencies.append((time.perf_counter() - sent[str(event.event_id)]) * 1e6)
        if len(latencies) >= total:
            done.set()

    handlers = Handlers()
    handlers.on(UserInteraction, handled)
    consumer_client = connect_redis(REDIS_URL, settings, extra_timeout=1.0)
    consumer = StreamConsumer(consumer_client, lambda: engine, handlers, settings,
                              consumer="bench", counters=EventCounters())
    consumer.ensure_group()
    stopping = threading.Event()
    thread = threading.Thread(target=consumer.run, args=(stopping,), daemon=True)
    thread.start()
    interval = 1.0 / STEADY_RATE
    started = time.perf_counter()
    for i in range(total):
        target = started + i * interval
        while (now := time.perf_counter()) < target:
            time.sleep(min(target - now, 0.0005))
        event = UserInteraction(user_id=1 + i % 100, seq=1 + i // 100, action="tap")
        sent[str(event.event_id)] = time.perf_counter()
        _store(outbox, settings.stream, event)
        relay.wake()
    achieved = total / (time.perf_counter() - started)
    done.wait(60)
    stopping.set()
    thread.join(10)
    relay.stop()
    relay_client.close()
    consumer_client.close()
    engine.dispose()
    return summarise(
        f"stored → handled @ {STEADY_RATE}/s", latencies,
        events=total, handled=len(latencies), achieved_publish_rate=round(achieved),
    )
