"""Retention: ``processed_events`` and ``dead_letters`` older than ``EVENTS_RETENTION`` are
deleted by a recurring scheduled job, so neither table grows without bound.

The window: an event redelivered less than ``EVENTS_RETENTION`` after it was handled is
recognised as a duplicate; one redelivered later would run its handlers again. Redis keeps
at most ``EVENTS_STREAM_MAX_LENGTH`` entries and the outbox is drained in seconds, so a
redelivery a week late does not happen in practice; handlers with outside effects keep
their own keys as well.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

import structlog
from sqlalchemy import Engine, delete

from yabot.scheduler.jobs import Job, schedule
from yabot.settings import EventSettings
from yabot.stores.tables import dead_letters, processed_events

log = structlog.get_logger("yabot.scheduler")

RETENTION_JOB = "retention"


def prune(engine: Engine, before: datetime) -> tuple[int, int]:
    """Delete rows recorded before ``before``; (processed_events, dead_letters) deleted."""
    with engine.begin() as conn:
        handled = conn.execute(
            delete(processed_events).where(processed_events.c.processed_at < before)).rowcount
        dead = conn.execute(
            delete(dead_letters).where(dead_letters.c.failed_at < before)).rowcount
    return int(handled), int(dead)


def retention_job(engine: Callable[[], Engine], settings: EventSettings,
                  now: Callable[[], datetime]) -> Callable[[Job], None]:
    """The handler of the recurring ``retention`` job: prune, then schedule the next pass."""

    def run(job: Job) -> None:
        moment = now()
        handled, dead = prune(engine(), moment - timedelta(seconds=settings.retention))
        log.info("retention pass", processed_events=handled, dead_letters=dead)
        with engine().begin() as conn:
            # Same key: the job moves to its next time (a new version the scheduler keeps).
            schedule(conn, RETENTION_JOB, RETENTION_JOB,
                     moment + timedelta(seconds=settings.retention_interval))

    return run
