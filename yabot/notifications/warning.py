"""The ``vip-warning`` job: tell a user their VIP is about to lapse, once per subscription end.

The coordinator group keeps the job ``NOTIFICATIONS_VIP_WARNING_LEAD`` seconds before the end
of the user's current VIP (`yabot.scheduler.vip.vip_jobs`), moving or cancelling it with every
change. When it fires it still asks the user's session (at its owner) how the subscription
stands — a change whose event the coordinator group has not handled yet must not be warned
about — and queues the warning through the same rules as every notification (notifications
on, bot not blocked, in the user's language). Its cause is the subscription *end* (a name-based
UUID of user and end), so a job fired twice (a process died mid-fire) or scheduled again for
the same end queues one warning.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import structlog
from sqlalchemy import Engine

from yabot.notifications.counters import NotificationCounters, notification_counters
from yabot.notifications.group import NotificationRules
from yabot.scheduler.jobs import Job
from yabot.views import SubscriptionView

log = structlog.get_logger("yabot.notifications")

WARNING_TEXT = "vip_warning"
#: Ends that differ by less than this are the same end (stores round-trip timestamps).
SAME_END = timedelta(seconds=1)
_CAUSES = uuid.UUID("6c0b1f1e-5f4e-4a53-9a43-7a1f0d5b2c11")

#: Reads a user's subscription where the user lives (their session, at its owner).
ReadSubscription = Callable[[int], SubscriptionView]


def warning_cause(user_id: int, ends_at: datetime) -> str:
    """The cause of the warning for ``user_id``'s subscription ending at ``ends_at``."""
    end = _utc(ends_at).replace(microsecond=0).isoformat()
    return str(uuid.uuid5(_CAUSES, f"vip-warning:{user_id}:{end}"))


def warn_vip(engine: Callable[[], Engine], rules: NotificationRules,
             subscription: ReadSubscription, now: Callable[[], datetime],
             counters: NotificationCounters = notification_counters) -> Callable[[Job], None]:
    """The handler of ``vip-warning`` jobs."""

    def run(job: Job) -> None:
        if job.user_id is None:
            return
        ends_at = _utc(datetime.fromisoformat(str(job.payload["ends_at"])))
        view = subscription(job.user_id)
        current = _utc(view.ends_at) if view.ends_at is not None else None
        if not view.vip or current is None or abs(current - ends_at) >= SAME_END \
                or current <= now():
            counters.incr("stale_warning")
            log.info("VIP warning not sent: the subscription changed", user_id=job.user_id)
            return
        with engine().begin() as conn:
            rules.queue(conn, warning_cause(job.user_id, ends_at), job.user_id, WARNING_TEXT,
                        ends=ends_at.strftime("%Y-%m-%d %H:%M"))

    return run


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
