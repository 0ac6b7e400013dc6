"""VIP expiry on time: the scheduler's first user.

A subscription lapses at its ``ends_at`` whether or not anything looks (reads decide expiry
at access time); what the scheduler adds is that the lapse *happens* then — the user's
session marks it expired and records ``SubscriptionChanged(status="expired")`` for the
consumers (notifications, daily figures) — instead of whenever the user next looks.

- `schedule_vip_expiry` is a handler of the ``coordinator`` consumer group: every
  ``SubscriptionChanged`` of a user moves their one ``vip-expiry:<user>`` job to the new end
  (active VIP) or cancels it (cancelled, expired, another plan), in the same transaction
  that marks the event handled, so a redelivered event changes nothing.
- `expire_vip` is the job: it asks the user's session for its subscription, which expires a
  lapsed one and records the event (once: the session's ``expire_lapsed`` finds nothing the
  second time).
- `vip_jobs` adds the warning ahead of the end (``NOTIFICATIONS_VIP_WARNING_LEAD``): the
  user's one ``vip-warning:<user>`` job is moved or cancelled with the expiry job; what it
  does is `yabot.notifications.warning`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from sqlalchemy import Connection

from yabot.domain.subscriptions import Plan
from yabot.events.models import SubscriptionChanged
from yabot.scheduler.jobs import Job, cancel, schedule
from yabot.sessions.messages import GetSubscription

VIP_EXPIRY = "vip-expiry"
VIP_WARNING = "vip-warning"

#: What a consumer group's handler is (`yabot.events.groups.Handler`).
SubscriptionHandler = Callable[[Any, Connection], None]


def expiry_key(user_id: int) -> str:
    return f"{VIP_EXPIRY}:{user_id}"


def schedule_vip_expiry(event: Any, conn: Connection) -> None:
    """Consumer handler for `SubscriptionChanged`: move or cancel the user's expiry job."""
    assert isinstance(event, SubscriptionChanged)
    key = expiry_key(event.user_id)
    if event.status == "active" and event.plan == Plan.VIP.value and event.expires_at:
        schedule(conn, key, VIP_EXPIRY, event.expires_at, user_id=event.user_id,
                 payload={"ends_at": event.expires_at.isoformat()})
    else:
        cancel(conn, key)


def warning_key(user_id: int) -> str:
    return f"{VIP_WARNING}:{user_id}"


def schedule_vip_warning(event: SubscriptionChanged, conn: Connection, lead: float) -> None:
    """Move the user's warning job to ``lead`` seconds before the new end, or cancel it.

    No warning for a subscription that had less than ``lead`` left when it started or changed
    (the user has just seen its end), nor with ``lead`` 0."""
    key = warning_key(event.user_id)
    if lead > 0 and event.status == "active" and event.plan == Plan.VIP.value \
            and event.expires_at is not None:
        due = event.expires_at - timedelta(seconds=lead)
        if due > event.occurred_at:
            schedule(conn, key, VIP_WARNING, due, user_id=event.user_id,
                     payload={"ends_at": event.expires_at.isoformat()})
            return
    cancel(conn, key)


def vip_jobs(warning_lead: float) -> SubscriptionHandler:
    """The coordinator group's handler for `SubscriptionChanged`: both of the user's VIP jobs
    (expiry, and the warning ``warning_lead`` seconds before it) follow the subscription."""

    def handle(event: Any, conn: Connection) -> None:
        assert isinstance(event, SubscriptionChanged)
        schedule_vip_expiry(event, conn)
        schedule_vip_warning(event, conn, warning_lead)

    return handle


def expire_vip(ask_session: Callable[[int, GetSubscription], object]) -> Callable[[Job], None]:
    """The ``vip-expiry`` job: the user's session looks at (and so expires) the subscription."""

    def run(job: Job) -> None:
        if job.user_id is not None:
            ask_session(job.user_id, GetSubscription())

    return run
