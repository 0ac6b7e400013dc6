"""Subscriptions: which plan a user is on, and until when. Expiry is decided at access time."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, model_validator

from yabot.domain.users import UserId, UtcDatetime, utcnow


class Plan(StrEnum):
    FREE = "free"
    VIP = "vip"


class SubscriptionStatus(StrEnum):
    ACTIVE = "active"
    EXPIRED = "expired"
    CANCELLED = "cancelled"


class Subscription(BaseModel):
    """One period of a plan. ``id`` is None until stored."""

    model_config = ConfigDict(frozen=True)

    id: int | None = None
    user_id: UserId
    plan: Plan
    status: SubscriptionStatus = SubscriptionStatus.ACTIVE
    starts_at: UtcDatetime
    ends_at: UtcDatetime
    updated_at: UtcDatetime = Field(default_factory=utcnow)

    @model_validator(mode="after")
    def _ends_after_it_starts(self) -> Subscription:
        if self.ends_at <= self.starts_at:
            raise ValueError("ends_at must be after starts_at")
        return self

    def is_active_at(self, moment: datetime) -> bool:
        return self.status is SubscriptionStatus.ACTIVE and self.starts_at <= moment < self.ends_at


def next_change(subscription: Subscription | None, moment: datetime) -> datetime | None:
    """The first instant after ``moment`` at which what ``subscription`` means (VIP or not,
    expired or not) may change: its start or its end, whichever is still ahead; None when
    both are past (or there is none), so what it means at ``moment`` holds for good."""
    if subscription is None:
        return None
    ahead = [at for at in (subscription.starts_at, subscription.ends_at) if at > moment]
    return min(ahead, default=None)


def status_at(subscription: Subscription, moment: datetime) -> SubscriptionStatus:
    """The status ``subscription`` has at ``moment``: an active one whose end has passed is
    expired, whether or not anything has marked it so."""
    if subscription.status is SubscriptionStatus.ACTIVE and subscription.ends_at <= moment:
        return SubscriptionStatus.EXPIRED
    return subscription.status


def is_vip_at(subscription: Subscription | None, moment: datetime) -> bool:
    """VIP access at ``moment``: an active VIP subscription that has begun and not ended."""
    return (subscription is not None and subscription.plan is Plan.VIP
            and subscription.is_active_at(moment))
