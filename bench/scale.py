"""Scale-out costs on the single-process path, as ratios and differences in one run.

- The durable append the webhook now waits for before its 200: `SqlIntake.append` (SQLite
  WAL file, the embedded default) and `RedisIntake.append` (local Redis), against the
  in-memory hand-off the webhook did before (``loop.call_soon_threadsafe``). Target: ≤ 2 ms
  added at p50.
- A forwarded ask against the same ask answered locally: the owner's listener over loopback
  plus (de)serialisation. Target: ≤ 1 ms added at p50.

Not measured here: the API state route with 2 processes against 1 (≥ 1.6x req/s): it needs a
load generator and two gunicorn masters on this 2-core machine; see the report.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import threading
import uuid
from pathlib import Path
from typing import Any

import redis

from actors import Ask
from bench.report import Check, Report, latencies_us, summarise
from yabot.cluster.forwarding import AskForwarder, AskServer
from yabot.intake import IntakeEntry
from yabot.intake.redis import RedisIntake
from yabot.intake.sql import SqlIntake
from yabot.sessions.messages import GetWallet, Wallet
from yabot.stores.engine import make_engine
from yabot.stores.tables import metadata

REDIS_URL = os.environ.get("REDIS_TEST_URL", "redis://127.0.0.1:6379/0")
BODY = '{"update_id": 1, "message": {"message_id": 1, "date": 0, "chat": {"id": 7, ' \
       '"type": "private"}, "from": {"id": 7, "is_bot": false, "first_name": "A"}, ' \
       '"text": "/help"}}'
KEY = b"b" * 32


def run(quick: bool = False) -> Report:
    count = 1_000 if quick else 5_000
    report = Report("scale")
    entry = IntakeEntry(partition=3, key=7, body=BODY)

    loop = asyncio.new_event_loop()
    loop_thread = threading.Thread(target=loop.run_forever, daemon=True)
    loop_thread.start()
    handoff = summarise("webhook hand-off before (call_soon_threadsafe)",
                        latencies_us(lambda: loop.call_soon_threadsafe(lambda: None), count))
    loop.call_soon_threadsafe(loop.stop)
    report.measurements.append(handoff)
    assert handoff.median_us is not None

    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(f"sqlite:///{Path(tmp) / 'bench.sqlite3'}")
        metadata.create_all(engine)
        sql = SqlIntake(lambda: engine)
        appended = summarise("durable append: SQL intake (SQLite WAL)",
                             latencies_us(lambda: sql.append([entry]), count))
        engine.dispose()
    report.measurements.append(appended)
    _check_added(report, "SQL intake append - hand-off, p50 ms", appended.median_us,
                 handoff.median_us, 2.0)

    prefix = f"yabot-bench:{uuid.uuid4().hex[:8]}"
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
        intake = RedisIntake(REDIS_URL, prefix, "bench", 16)
        streamed = summarise("durable append: Redis stream (local)",
                             latencies_us(lambda: intake.append([entry]), count))
        intake.close()
        report.measurements.append(streamed)
        _check_added(report, "Redis intake append - hand-off, p50 ms", streamed.median_us,
                     handoff.median_us, 2.0)
    except redis.exceptions.ConnectionError:
        report.measurements.append(summarise("durable append: Redis (unreachable, skipped)",
                                             [0.0]))
    finally:
        for key in client.scan_iter(match=prefix + "*"):
            client.delete(key)
        client.close()

    reply = Wallet(balance=1, entries=())

    def local_ask(user_id: int, message: Ask[Any]) -> Any:
        return reply

    server = AskServer("127.0.0.1", KEY, local_ask, lambda user_id: True)
    server.start()
    forwarder = AskForwarder(KEY)
    message = GetWallet(limit=3)
    local = summarise("ask answered locally (the owner's work only)",
                      latencies_us(lambda: local_ask(7, message), count))
    forwarded = summarise("the same ask forwarded to the owner (loopback)",
                          latencies_us(lambda: forwarder.ask(server.address, 7, message, 5.0),
                                       count))
    server.stop()
    report.measurements += [local, forwarded]
    _check_added(report, "forwarded - local ask, p50 ms", forwarded.median_us,
                 local.median_us, 1.0)
    return report


def _check_added(report: Report, name: str, measured_us: float | None,
                 baseline_us: float | None, target_ms: float) -> None:
    assert measured_us is not None
    assert baseline_us is not None
    added_ms = round((measured_us - baseline_us) / 1000, 3)
    report.checks.append(Check(name, added_ms, f"<= {target_ms}", added_ms <= target_ms))
