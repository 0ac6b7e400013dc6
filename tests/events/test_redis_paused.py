"""A hung Redis (SIGSTOP, not dead) stalls nothing: the rate limiter's breaker counts in the
process, events wait in the outbox, and after SIGCONT every event reaches the stream.

In process (the real runtime, stores and a redis-server of the test's own, the app through
falcon's test client) so the test controls exactly when Redis hangs. Speed under the pause
is measured by ``make bench`` (bench/faults.py), not asserted here.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from typing import Any

import falcon.testing
import pytest

from tests.support.api import CURRENT_KID, make_token
from tests.support.redis_server import RedisServer, stream_entries
from tests.support.settings import SettingsFactory
from tests.support.waiting import eventually, scaled
from yabot.api.app import create_app
from yabot.api.bridge import ApiBridge
from yabot.domain.users import TelegramIdentity
from yabot.events.models import BesitosTransferred, parse_event
from yabot.runtime import Runtime
from yabot.sessions.messages import Start

USERS = range(1, 9)
PER_USER = 25
STREAM = "events"


@pytest.fixture
def runtime(make_settings: SettingsFactory, redis_server: RedisServer) -> Iterator[Runtime]:
    settings = make_settings(
        REDIS_URL=redis_server.url, EVENTS_STREAM=STREAM, EVENTS_REDIS_TIMEOUT="0.2",
        EVENTS_REPLAY_INTERVAL="0.05", EVENTS_RETRY_MAX_DELAY="0.2",
        RATE_LIMIT_PER_SUBJECT="100000/minute", RATE_LIMIT_REDIS_TIMEOUT="0.1",
        RATE_LIMIT_REDIS_RETRY_AFTER="0.5", JWT_KEY_ID=CURRENT_KID,
    )
    with Runtime(settings) as runtime:
        for user_id in USERS:
            runtime.sessions.ask(user_id, Start(identity=TelegramIdentity(user_id=user_id)),
                                 timeout=scaled(30))
        yield runtime


def test_requests_succeed_while_redis_is_paused_and_no_event_is_lost(
    runtime: Runtime, redis_server: RedisServer
) -> None:
    app = create_app(runtime.settings, ApiBridge(runtime.sessions, scaled(30)),
                     health=runtime.health)
    client = falcon.testing.TestClient(app)
    headers = {"Authorization": f"Bearer {make_token()}"}
    statuses: Counter[int] = Counter()
    lock = threading.Lock()

    def earn(user_id: int) -> None:
        for index in range(PER_USER):
            response = client.simulate_post(
                f"/user/{user_id}/besitos", json={"kind": "earn", "amount": 1},
                headers={**headers, "Idempotency-Key": f"paused-{index}"})
            with lock:
                statuses[response.status_code] += 1

    redis_server.pause()
    try:
        threads = [threading.Thread(target=earn, args=(user_id,)) for user_id in USERS]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(scaled(300))
        readiness = client.simulate_get("/readyz")
    finally:
        redis_server.resume()

    assert statuses == Counter({200: len(USERS) * PER_USER})
    assert readiness.status_code == 200  # degraded (warn), not unready
    events = runtime.events

    def stream() -> list[Any]:
        return [parse_event(fields[b"body"])
                for _, fields in stream_entries(redis_server.client(), STREAM)]

    eventually(lambda: events.outbox.count() == 0, "the outbox relayed after SIGCONT")
    earned = Counter(event.user_id for event in {str(e.event_id): e for e in stream()}.values()
                     if isinstance(event, BesitosTransferred))
    assert earned == Counter({user_id: PER_USER for user_id in USERS})
