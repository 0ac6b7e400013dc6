"""SubscriptionService: a user's plan, read and changed; expiry decided at access time."""

from __future__ import annotations

from datetime import datetime

from yabot.domain.subscriptions import (
    Plan,
    Subscription,
    SubscriptionStatus,
    is_vip_at,
    status_at,
)
from yabot.domain.users import utcnow
from yabot.errors import InvalidInput, Unprocessable
from yabot.stores.handles import Stores
from yabot.views import SubscriptionView


def subscription_view(subscription: Subscription | None,
                      now: datetime | None = None) -> SubscriptionView:
    """What ``subscription`` means at ``now``: a lapsed VIP reads as expired, not VIP."""
    if subscription is None:
        return SubscriptionView(plan=Plan.FREE)
    moment = now or utcnow()
    return SubscriptionView(
        plan=subscription.plan, status=status_at(subscription, moment),
        starts_at=subscription.starts_at, ends_at=subscription.ends_at,
        vip=is_vip_at(subscription, moment),
    )


class SubscriptionService:
    """Plain class over the ``subscriptions`` repository; thread-safe (holds no state)."""

    def __init__(self, stores: Stores) -> None:
        self._stores = stores

    def check_subscription_status(self, user_id: int) -> SubscriptionView:
        """The user's plan now: their latest subscription as of this moment (a lapsed one
        reads expired whether or not anything marked it), or free when they never had one."""
        return subscription_view(self._stores.relational.subscriptions.latest(user_id))

    def is_vip(self, user_id: int) -> bool:
        return is_vip_at(self._stores.relational.subscriptions.current(user_id), utcnow())

    def expire_lapsed(self, user_id: int) -> Subscription | None:
        """Record as expired the user's active subscription whose end has passed; return it
        (None when there was nothing to mark). Reads never depend on this having run."""
        subscriptions = self._stores.relational.subscriptions
        current = subscriptions.current(user_id)
        if current is None or current.id is None:
            return None
        if status_at(current, utcnow()) is not SubscriptionStatus.EXPIRED:
            return None
        return subscriptions.set_status(current.id, SubscriptionStatus.EXPIRED)

    def update_subscription(
        self, user_id: int, plan: Plan, status: str, ends_at: datetime | None
    ) -> tuple[SubscriptionView, Subscription | None]:
        """Start ``plan`` until ``ends_at`` (``status="active"``) or cancel the current
        subscription (``status="cancelled"``). Returns the view and the subscription written
        (None when nothing changed). The user must have a profile (the caller ensures it).

        Starting ``free`` cancels the current plan: free is the absence of a subscription.
        """
        subscriptions = self._stores.relational.subscriptions
        now = utcnow()
        current = subscriptions.current(user_id)
        if status == SubscriptionStatus.CANCELLED.value or plan is Plan.FREE:
            if current is None or current.id is None:
                return SubscriptionView(plan=Plan.FREE), None
            cancelled = subscriptions.set_status(current.id, SubscriptionStatus.CANCELLED)
            if cancelled is None:
                return SubscriptionView(plan=Plan.FREE), None
            return subscription_view(cancelled, now), cancelled
        if ends_at is None or _aware(ends_at) <= now:
            raise Unprocessable("ends_at: an active plan needs an end in the future")
        started = subscriptions.start(Subscription(user_id=user_id, plan=plan, starts_at=now,
                                                   ends_at=ends_at))
        return subscription_view(started, now), started


def _aware(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise InvalidInput("ends_at: give a time zone (e.g. 2026-12-31T00:00:00Z)")
    return moment
