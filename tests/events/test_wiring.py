"""The events subtree in the real runtime: /start publishes, and never fails because of it."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Connection

from actors import WhichChildren, ask
from tests.support.faults import Failing, inject_documents
from tests.support.processes import free_port
from tests.support.settings import SettingsFactory
from tests.support.waiting import ASK, eventually
from yabot.domain.users import TelegramIdentity
from yabot.events.counters import event_counters
from yabot.events.models import UserInteraction
from yabot.events.outbox import SqlOutbox
from yabot.health import HealthStatus
from yabot.runtime import Runtime
from yabot.sessions.messages import Start, Welcome
from yabot.settings import Settings


@pytest.fixture
def run() -> Iterator[list[Runtime]]:
    started: list[Runtime] = []
    yield started
    for runtime in started:
        runtime.stop()


def start_runtime(settings: Settings, run: list[Runtime]) -> Runtime:
    runtime = Runtime(settings)
    run.append(runtime)
    return runtime


def start(runtime: Runtime, user_id: int = 42) -> Welcome:
    identity = TelegramIdentity(user_id=user_id, first_name="Ana")
    return runtime.sessions.ask(user_id, Start(identity=identity), timeout=ASK)


def test_start_publishes_user_interactions_with_consecutive_seqs(
    make_settings: SettingsFactory, local_redis: tuple[str, str], run: list[Runtime]
) -> None:
    url, prefix = local_redis
    runtime = start_runtime(make_settings(REDIS_URL=url, EVENTS_STREAM=prefix + "events",
                                          EVENTS_READ_BLOCK_MS="50"), run)
    seen: list[UserInteraction] = []
    lock = threading.Lock()

    def remember(event: Any, conn: Connection) -> None:
        with lock:
            seen.append(event)

    runtime.event_handlers.on(UserInteraction, remember)
    runtime.start()

    assert start(runtime).created
    assert not start(runtime).created

    eventually(lambda: len(seen) == 2, "both /start events handled")
    assert [(e.user_id, e.seq, e.action, e.details["created"]) for e in seen] == [
        (42, 1, "start", "true"), (42, 2, "start", "false"),
    ]
    eventually(lambda: runtime.events.health().status is HealthStatus.PASS, "events healthy")


def test_without_redis_events_reach_the_consumer_groups_in_process(
    settings: Settings, run: list[Runtime]
) -> None:
    runtime = start_runtime(settings, run)
    seen: list[UserInteraction] = []
    lock = threading.Lock()

    def remember(event: Any, conn: Connection) -> None:
        with lock:
            seen.append(event)

    runtime.event_handlers.on(UserInteraction, remember)
    runtime.start()

    assert start(runtime).created
    assert not start(runtime).created

    eventually(lambda: len(seen) == 2, "both /start events handled in-process")
    assert [(e.seq, e.details["created"]) for e in seen] == [(1, "true"), (2, "false")]
    outbox = SqlOutbox(lambda: runtime.stores.relational.engine)
    eventually(lambda: outbox.count() == 0, "the outbox drained")
    health = runtime.events.health()
    assert health.status is HealthStatus.PASS
    assert health.output == "disabled: REDIS_URL is unset"


def test_with_redis_unreachable_start_succeeds_and_the_event_waits_in_the_outbox(
    make_settings: SettingsFactory, run: list[Runtime]
) -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"
    runtime = start_runtime(make_settings(REDIS_URL=dead, EVENTS_RETRY_BASE_DELAY="0.001"), run)
    runtime.start()

    assert start(runtime).created

    assert SqlOutbox(lambda: runtime.stores.relational.engine).count() == 1
    assert runtime.events.health().status is HealthStatus.WARN


def test_an_outbox_that_refuses_an_event_of_no_change_does_not_fail_start(
    settings: Settings, run: list[Runtime]
) -> None:
    runtime = start_runtime(settings, run)
    runtime.start()
    users = Failing(runtime.stores.documents.users, "record_events")
    inject_documents(runtime.stores, users=users)
    before = event_counters.get("lost")

    welcome = start(runtime, 7)

    assert welcome.created
    assert users.raised == 1
    assert event_counters.get("lost") == before + 1


def test_events_subtree_runs_in_the_root_after_stores(settings: Settings, run: list[Runtime]
                                                       ) -> None:
    runtime = start_runtime(settings, run)
    runtime.start()
    assert runtime._root is not None
    assert ask(runtime._root, WhichChildren(), timeout=ASK) == ("stores", "events", "coordinator",
                                                                "sessions", "scheduler")
    assert runtime.events.relay is not None
