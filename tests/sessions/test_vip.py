"""The VIP gate over time: denied for free, allowed while active, denied once it has ended
(with nothing marking it expired), allowed again after renewal."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.sessions.support import Sessions, start
from yabot.domain.subscriptions import Plan, Subscription
from yabot.domain.users import utcnow
from yabot.errors import VipRequired
from yabot.events.models import SubscriptionChanged
from yabot.sessions.messages import ChangeSubscription, Choose, GetSubscription, ShowFragment

VIP_FRAGMENT = ShowFragment(fragment_id="vip_salon")


def lapse(sessions: Sessions, user_id: int) -> None:
    """Give the user a VIP period that ended a second ago, as time passing would."""
    now = utcnow()
    sessions.stores.relational.subscriptions.start(Subscription(
        user_id=user_id, plan=Plan.VIP, starts_at=now - timedelta(days=30),
        ends_at=now - timedelta(seconds=1),
    ))


def test_vip_fragment_follows_the_subscription(sessions: Sessions) -> None:
    start(sessions, 1)
    with pytest.raises(VipRequired):
        sessions.ask(1, VIP_FRAGMENT)

    sessions.ask(1, ChangeSubscription(plan=Plan.VIP, ends_at=utcnow() + timedelta(days=1)))
    assert sessions.ask(1, VIP_FRAGMENT).fragment_id == "vip_salon"

    lapse(sessions, 1)
    with pytest.raises(VipRequired):  # expiry decided at access time: no job has run
        sessions.ask(1, VIP_FRAGMENT)
    view = sessions.ask(1, GetSubscription())
    assert (view.plan, view.status, view.vip) == (Plan.VIP, "expired", False)

    sessions.ask(1, ChangeSubscription(plan=Plan.VIP, ends_at=utcnow() + timedelta(days=30)))
    assert sessions.ask(1, VIP_FRAGMENT).fragment_id == "vip_salon"

    changes = [e.status for e in sessions.of(1) if isinstance(e, SubscriptionChanged)]
    assert changes == ["active", "expired", "active"]


def test_a_vip_choice_is_refused_after_expiry(sessions: Sessions) -> None:
    start(sessions, 2)
    sessions.ask(2, ChangeSubscription(plan=Plan.VIP, ends_at=utcnow() + timedelta(days=1)))
    view = sessions.ask(2, ShowFragment())
    for choice_id in ("accept", "pay_toll"):
        view = sessions.ask(2, Choose(fragment_id=view.fragment_id, choice_id=choice_id))
    door = next(choice for choice in view.choices if choice.choice_id == "velvet_door")
    assert door.available is True

    lapse(sessions, 2)
    with pytest.raises(VipRequired):
        sessions.ask(2, Choose(fragment_id="hall", choice_id="velvet_door"))
    hall = sessions.ask(2, ShowFragment())
    door = next(choice for choice in hall.choices if choice.choice_id == "velvet_door")
    assert (door.available, door.why_not) == (False, "vip-required")
