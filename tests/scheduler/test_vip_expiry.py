"""VIP expiry on time, in the real runtime (embedded default: no Redis): the subscription
lapses at its end without anybody looking, once; a cancelled one never fires."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, select

from tests.support.settings import SettingsFactory
from tests.support.users import start_user
from tests.support.waiting import ASK, eventually
from yabot.domain.subscriptions import Plan
from yabot.events.models import SubscriptionChanged
from yabot.runtime import Runtime
from yabot.scheduler.vip import expiry_key
from yabot.sessions.messages import ChangeSubscription
from yabot.stores.tables import scheduled_jobs


def test_a_vip_lapses_at_its_end_once_and_a_cancelled_one_never_fires(
    make_settings: SettingsFactory
) -> None:
    runtime = Runtime(make_settings(EVENTS_SCHEDULER_POLL_INTERVAL="0.05",
                                    EVENTS_REPLAY_INTERVAL="0.05"))
    seen: list[SubscriptionChanged] = []
    lock = threading.Lock()

    def remember(event: Any, conn: Connection) -> None:
        with lock:
            seen.append(event)

    runtime.event_handlers.on(SubscriptionChanged, remember)

    def jobs() -> list[str]:
        with runtime.stores.relational.engine.connect() as conn:
            return sorted(conn.execute(select(scheduled_jobs.c.key)).scalars())

    def statuses(user_id: int) -> list[str]:
        with lock:
            return [e.status for e in seen if e.user_id == user_id]

    with runtime:
        for user_id in (7, 8):
            start_user(runtime, user_id)
        ends = datetime.now(UTC) + timedelta(seconds=2)
        for user_id in (7, 8):
            runtime.sessions.ask(user_id, ChangeSubscription(plan=Plan.VIP, ends_at=ends),
                                 timeout=ASK)
        eventually(lambda: {expiry_key(7), expiry_key(8)} <= set(jobs()),
                   "both expiry jobs scheduled by the coordinator group")
        runtime.sessions.ask(8, ChangeSubscription(plan=Plan.VIP, status="cancelled"),
                             timeout=ASK)
        eventually(lambda: expiry_key(8) not in jobs(), "the cancelled VIP's job cancelled")

        eventually(lambda: statuses(7) == ["active", "expired"], "user 7's VIP lapsed on time")
        eventually(lambda: expiry_key(7) not in jobs(), "the fired job is gone")
        assert statuses(8) == ["active", "cancelled"]
        assert datetime.now(UTC) >= ends
    assert statuses(7) == ["active", "expired"]  # once, not again at a later look
