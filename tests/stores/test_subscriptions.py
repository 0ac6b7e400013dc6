"""The `subscriptions` table and its repository, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError
from sqlalchemy import Engine, func, select, text

from yabot.domain.subscriptions import Plan, Subscription, SubscriptionStatus
from yabot.domain.users import UserProfile
from yabot.errors import InvalidRecord
from yabot.stores.sql import SqlSubscriptions, SqlUserProfiles
from yabot.stores.tables import subscriptions as subscriptions_table

T0 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
def subscriptions(engine: Engine) -> SqlSubscriptions:
    SqlUserProfiles(engine).create_if_absent(UserProfile(user_id=1, first_name="Ana"))
    return SqlSubscriptions(engine)


def vip(days: int = 30, start: datetime = T0, user_id: int = 1) -> Subscription:
    return Subscription(user_id=user_id, plan=Plan.VIP, starts_at=start,
                        ends_at=start + timedelta(days=days))


def history(engine: Engine, user_id: int) -> list[tuple[int, SubscriptionStatus]]:
    """The user's subscriptions as stored, newest first: (id, status)."""
    with engine.connect() as conn:
        rows = conn.execute(select(subscriptions_table.c.id, subscriptions_table.c.status)
                            .where(subscriptions_table.c.user_id == user_id)
                            .order_by(subscriptions_table.c.id.desc())).all()
    return [(row.id, SubscriptionStatus(row.status)) for row in rows]


def count_rows(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(subscriptions_table)).scalar_one())


def test_started_subscription_is_current(subscriptions: SqlSubscriptions) -> None:
    stored = subscriptions.start(vip())
    assert stored.id is not None
    assert subscriptions.current(1) == stored
    assert subscriptions.current(2) is None


def test_starting_a_new_plan_cancels_the_active_one(subscriptions: SqlSubscriptions,
                                                    engine: Engine) -> None:
    first = subscriptions.start(vip())
    second = subscriptions.start(vip(start=T0 + timedelta(days=1)))
    assert subscriptions.current(1) == second
    assert history(engine, 1) == [
        (second.id, SubscriptionStatus.ACTIVE), (first.id, SubscriptionStatus.CANCELLED),
    ]


def test_due_subscriptions_expire(subscriptions: SqlSubscriptions, engine: Engine) -> None:
    subscriptions.start(vip(days=1))
    assert subscriptions.expire_due(T0 + timedelta(hours=23)) == 0
    assert subscriptions.expire_due(T0 + timedelta(days=1)) == 1
    assert subscriptions.current(1) is None
    assert history(engine, 1)[0][1] is SubscriptionStatus.EXPIRED


def test_status_can_be_set_by_id(subscriptions: SqlSubscriptions) -> None:
    stored = subscriptions.start(vip())
    assert stored.id is not None
    changed = subscriptions.set_status(stored.id, SubscriptionStatus.CANCELLED)
    assert changed is not None
    assert changed.status is SubscriptionStatus.CANCELLED
    assert subscriptions.set_status(9999, SubscriptionStatus.EXPIRED) is None


def test_model_refuses_an_end_before_the_start() -> None:
    with pytest.raises(ValidationError, match="ends_at must be after starts_at"):
        Subscription(user_id=1, plan=Plan.VIP, starts_at=T0, ends_at=T0)


def test_table_refuses_an_end_before_the_start_naming_the_field(
    subscriptions: SqlSubscriptions, engine: Engine
) -> None:
    bad = Subscription.model_construct(
        id=None, user_id=1, plan=Plan.VIP, status=SubscriptionStatus.ACTIVE,
        starts_at=T0, ends_at=T0 - timedelta(days=1), updated_at=T0,
    )
    subscriptions.start(vip())
    with pytest.raises(InvalidRecord) as caught:
        subscriptions.start(bad)
    assert caught.value.field == "ends_at"
    # nothing partial: the previous active subscription was not cancelled either
    assert subscriptions.current(1) is not None
    assert count_rows(engine) == 1


def test_subscription_for_a_user_without_profile_is_refused(
    subscriptions: SqlSubscriptions, engine: Engine
) -> None:
    with pytest.raises(InvalidRecord) as caught:
        subscriptions.start(vip(user_id=404))
    assert caught.value.field == "user_id"
    assert count_rows(engine) == 0


def test_table_refuses_an_unknown_status(subscriptions: SqlSubscriptions, engine: Engine) -> None:
    stored = subscriptions.start(vip())
    with pytest.raises(Exception, match="subscription_status") as caught, engine.begin() as conn:
        conn.execute(text("UPDATE subscriptions SET status = 'paused' WHERE id = :id"),
                     {"id": stored.id})
    assert "IntegrityError" in type(caught.value).__name__
    current = subscriptions.current(1)
    assert current is not None
    assert current.status is SubscriptionStatus.ACTIVE


def test_latest_is_the_newest_subscription_whatever_its_status(
    subscriptions: SqlSubscriptions,
) -> None:
    assert subscriptions.latest(1) is None
    subscriptions.start(vip())
    second = subscriptions.start(vip(start=T0 + timedelta(days=1)))
    assert second.id is not None
    assert subscriptions.latest(1) == second
    expired = subscriptions.set_status(second.id, SubscriptionStatus.EXPIRED)
    assert subscriptions.current(1) is None
    assert subscriptions.latest(1) == expired
