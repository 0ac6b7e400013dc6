"""Faults: the API's throughput and p99 while Redis is hung (SIGSTOP) against the same run
with Redis up (issue 14: within 2x), and that no event is lost once Redis resumes.

In process: the real runtime on a SQLite file, a redis-server of its own (needs
``redis-server`` on PATH), the Falcon app through its test client from several threads (the
shape of the worker's request threads, without the sockets). Each phase runs the same
load for the same time.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
import uuid
from pathlib import Path

import falcon.testing
import jwt

from bench.report import Check, Measurement, Report, summarise
from tests.support.redis_server import RedisServer, stream_entries
from yabot.api.app import create_app
from yabot.api.bridge import ApiBridge
from yabot.domain.users import TelegramIdentity
from yabot.events.models import BesitosTransferred, parse_event
from yabot.runtime import Runtime
from yabot.sessions.messages import Start
from yabot.settings import load_settings

SECRET = "bench-secret-" + "x" * 40
THREADS = 8
STREAM = "bench:events"


def _token() -> str:
    now = int(time.time())
    return jwt.encode({"iss": "yabot", "aud": "yabot-api", "sub": "bench", "iat": now,
                       "exp": now + 3600, "scope": "besitos:write users:read"}, SECRET,
                      algorithm="HS256")


def _load(client: falcon.testing.TestClient, seconds: float, tag: str
          ) -> tuple[list[float], int, int]:
    """THREADS clients, each earning 1 besito per request for ``seconds``; latencies (µs),
    successes, failures."""
    headers = {"Authorization": f"Bearer {_token()}"}
    latencies: list[float] = []
    failures = 0
    lock = threading.Lock()
    stop = time.perf_counter() + seconds

    def client_loop(user_id: int) -> None:
        nonlocal failures
        mine: list[float] = []
        failed = 0
        index = 0
        while time.perf_counter() < stop:
            started = time.perf_counter()
            response = client.simulate_post(
                f"/user/{user_id}/besitos", json={"kind": "earn", "amount": 1},
                headers={**headers, "Idempotency-Key": f"{tag}-{index}"})
            mine.append((time.perf_counter() - started) * 1e6)
            failed += response.status_code != 200
            index += 1
        with lock:
            latencies.extend(mine)
            failures += failed

    threads = [threading.Thread(target=client_loop, args=(user_id,))
               for user_id in range(1, THREADS + 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return latencies, len(latencies) - failures, failures


def run(quick: bool = False) -> Report:
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("bench faults needs redis-server on PATH")
    seconds = 3.0 if quick else 15.0
    report = Report("faults")
    with tempfile.TemporaryDirectory() as tmp:
        redis_server = RedisServer(Path(tmp) / "redis", binary).start()
        saved = dict(os.environ)
        os.environ.update({
            "YABOT_ENV": "test", "YABOT_DATA_DIR": str(Path(tmp) / "var"),
            "JWT_SECRET": SECRET, "REDIS_URL": redis_server.url, "EVENTS_STREAM": STREAM,
            "RATE_LIMIT_PER_SUBJECT": "1000000/minute", "LOG_LEVEL": "WARNING",
        })
        try:
            settings = load_settings()
        finally:
            os.environ.clear()
            os.environ.update(saved)
        runtime = Runtime(settings)
        runtime.start()
        try:
            for user_id in range(1, THREADS + 1):
                runtime.sessions.ask(user_id, Start(identity=TelegramIdentity(user_id=user_id)),
                                     timeout=30)
            client = falcon.testing.TestClient(
                create_app(settings, ApiBridge(runtime.sessions, 30.0), health=runtime.health))
            tag = uuid.uuid4().hex[:6]
            up, up_ok, up_failed = _load(client, seconds, f"up-{tag}")
            redis_server.pause()
            try:
                paused, paused_ok, paused_failed = _load(client, seconds, f"paused-{tag}")
            finally:
                redis_server.resume()
            deadline = time.monotonic() + 120
            while runtime.events.outbox.count() and time.monotonic() < deadline:
                time.sleep(0.1)
            bodies = [parse_event(fields[b"body"])
                      for _, fields in stream_entries(redis_server.client(), STREAM)]
            earned = {str(e.event_id) for e in bodies if isinstance(e, BesitosTransferred)}
        finally:
            runtime.stop()
            redis_server.stop()
    up_m = summarise("earn, redis up", up, ok=up_ok, failed=up_failed)
    paused_m = summarise("earn, redis paused (SIGSTOP)", paused, ok=paused_ok,
                         failed=paused_failed)
    report.measurements += [
        Measurement(up_m.name, up_m.median_us, up_m.p99_us, up_ok / seconds, up_m.extra),
        Measurement(paused_m.name, paused_m.median_us, paused_m.p99_us, paused_ok / seconds,
                    paused_m.extra),
        Measurement("events in the stream after SIGCONT", per_second=None,
                    extra={"requests_ok": up_ok + paused_ok, "distinct_events": len(earned)}),
    ]
    assert up_m.p99_us is not None
    assert paused_m.p99_us is not None
    throughput = paused_ok / max(1, up_ok)
    p99 = paused_m.p99_us / up_m.p99_us
    report.checks += [
        Check("throughput paused / up", round(throughput, 3), ">= 0.5", throughput >= 0.5),
        Check("p99 paused / up", round(p99, 3), "<= 2", p99 <= 2.0),
        Check("failed requests while paused", paused_failed, "0", paused_failed == 0),
        Check("events lost", up_ok + paused_ok - len(earned), "0",
              up_ok + paused_ok == len(earned)),
    ]
    return report
