"""Retention: handled-event marks and dead letters older than the window are pruned by the
scheduler; inside the window a redelivered event is still a duplicate, past it it is not."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, func, insert, select, update

from tests.support.clock import ManualClock
from yabot.events.groups import Handlers, handle_once
from yabot.events.models import UserInteraction
from yabot.scheduler import JobHandlers, Scheduler, SchedulerMetrics, schedule
from yabot.scheduler.retention import RETENTION_JOB, prune, retention_job
from yabot.settings import EventSettings
from yabot.stores.tables import dead_letters, processed_events, scheduled_jobs

DAY = 86_400.0
T0 = datetime(2026, 12, 2, tzinfo=UTC)


def handled_at(engine: Engine, event: UserInteraction, moment: datetime, runs: list[int]) -> bool:
    handlers = Handlers()

    def effect(e: Any, conn: Connection) -> None:
        runs.append(e.seq)

    handlers.on(UserInteraction, effect)
    fresh = handle_once(engine, "g", handlers, event)
    with engine.begin() as conn:
        conn.execute(update(processed_events).values(processed_at=moment)
                     .where(processed_events.c.event_id == str(event.event_id)))
    return fresh


def count(engine: Engine, table: Any) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def test_a_redelivery_inside_the_window_is_a_duplicate_and_past_it_is_not(engine: Engine
                                                                         ) -> None:
    runs: list[int] = []
    event = UserInteraction(user_id=1, seq=1, action="start")
    assert handled_at(engine, event, T0, runs)
    # The window's edge: a pass whose cut-off is exactly the handling time keeps the mark.
    assert prune(engine, T0) == (0, 0)
    assert not handle_once(engine, "g", Handlers(), event)
    # One microsecond later the mark is gone: the same event would run again (documented).
    assert prune(engine, T0 + timedelta(microseconds=1)) == (1, 0)
    assert handled_at(engine, event, T0, runs)
    assert runs == [1, 1]


def test_the_scheduler_prunes_old_rows_and_schedules_its_next_pass(engine: Engine) -> None:
    settings = EventSettings(retention=7 * DAY, retention_interval=3600.0)
    old, recent = T0 - timedelta(days=8), T0 - timedelta(days=6)
    with engine.begin() as conn:
        conn.execute(insert(processed_events), [
            {"consumer_group": "g", "event_id": f"old-{i}", "processed_at": old}
            for i in range(3)
        ] + [{"consumer_group": "g", "event_id": "recent", "processed_at": recent}])
        conn.execute(insert(dead_letters), [
            {"consumer_group": "g", "event_id": eid, "stream": "s", "body": "{}", "error": "e",
             "attempts": 1, "failed_at": when} for eid, when in (("d-old", old), ("d-new", recent))
        ])
        schedule(conn, RETENTION_JOB, RETENTION_JOB, T0)
    clock = ManualClock(T0.timestamp())
    handlers = JobHandlers()
    scheduler = Scheduler(lambda: engine, handlers, clock=clock, metrics=SchedulerMetrics())
    handlers.on(RETENTION_JOB, retention_job(lambda: engine, settings, scheduler.now))

    assert scheduler.fire_due() == 1

    assert count(engine, processed_events) == 1
    assert count(engine, dead_letters) == 1
    with engine.connect() as conn:
        [due] = conn.execute(select(scheduled_jobs.c.due_at)).scalars()
    assert due.replace(tzinfo=UTC) == T0 + timedelta(hours=1)
    assert scheduler.fire_due() == 0
