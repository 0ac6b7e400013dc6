"""`SqlStarPayments`: settled Stars payments and the VIP they granted, one transaction each.

The ``star_payments`` table lives next to ``subscriptions`` in the relational store (SQLite or
PostgreSQL, whatever the document backend), so a payment and the subscription it grants are
written together or not at all. Built on demand from the relational store's engine and guard.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import Connection, insert, select, update

from yabot.domain.payments import PaymentStatus, StarPayment
from yabot.domain.subscriptions import Plan, Subscription, SubscriptionStatus, is_vip_at
from yabot.domain.users import utcnow
from yabot.stores.handles import RelationalRepositories
from yabot.stores.sql import guarded_write, insert_if_absent, read_current_subscription
from yabot.stores.tables import star_payments, subscriptions

#: From the moment of payment and the VIP already paid for, the end of the new VIP.
VipUntil = Callable[[datetime, datetime | None], datetime]


class SqlStarPayments:
    """Payments by Telegram's charge id; every method is one guarded transaction."""

    def __init__(self, relational: RelationalRepositories) -> None:
        self._engine = relational.engine
        self._guard = relational.guard

    def settle(self, payment: StarPayment, until: VipUntil) -> tuple[Subscription, bool]:
        """Record ``payment`` and start VIP until ``until(now, end of current VIP)``, in one
        transaction. A charge id recorded before changes nothing: (its subscription, False)."""

        def write() -> tuple[int, bool]:
            with self._engine.begin() as conn:
                row = payment.model_dump(exclude={"subscription_id"})
                row["status"] = payment.status.value
                if not insert_if_absent(conn, star_payments, row):
                    known = conn.execute(select(star_payments.c.subscription_id).where(
                        star_payments.c.charge_id == payment.charge_id)).scalar_one()
                    return int(known), False
                now = payment.paid_at
                current = read_current_subscription(conn, payment.user_id)
                paid_until = current.ends_at if is_vip_at(current, now) and current else None
                granted = Subscription(user_id=payment.user_id, plan=Plan.VIP, starts_at=now,
                                       ends_at=until(now, paid_until), updated_at=now)
                new_id = _start(conn, granted)
                conn.execute(update(star_payments)
                             .where(star_payments.c.charge_id == payment.charge_id)
                             .values(subscription_id=new_id))
                return new_id, True

        subscription_id, applied = guarded_write(self._guard, write, "settle star payment")
        return self._subscription(subscription_id), applied

    def refund(self, charge_id: str) -> tuple[StarPayment, bool] | None:
        """Mark the payment refunded and take its days off the VIP it extended (cancelled
        when nothing is left), in one transaction. None for an unknown charge id; (payment,
        False) when it was refunded before."""

        def write() -> bool | None:
            with self._engine.begin() as conn:
                payment = _payment(conn, charge_id)
                if payment is None:
                    return None
                if payment.status is PaymentStatus.REFUNDED:
                    return False
                now = utcnow()
                conn.execute(update(star_payments)
                             .where(star_payments.c.charge_id == charge_id)
                             .values(status=PaymentStatus.REFUNDED.value, refunded_at=now))
                _shorten(conn, payment, now)
                return True

        applied = guarded_write(self._guard, write, "refund star payment")
        if applied is None:
            return None
        payment = self.get(charge_id)
        assert payment is not None
        return payment, applied

    def get(self, charge_id: str) -> StarPayment | None:
        def read() -> StarPayment | None:
            with self._engine.connect() as conn:
                return _payment(conn, charge_id)

        return self._guard.run(read, "get star payment")

    def _subscription(self, subscription_id: int) -> Subscription:
        def read() -> Subscription:
            with self._engine.connect() as conn:
                row = conn.execute(select(subscriptions).where(
                    subscriptions.c.id == subscription_id)).mappings().one()
            return Subscription.model_validate(dict(row))

        return self._guard.run(read, "get subscription")


def _payment(conn: Connection, charge_id: str) -> StarPayment | None:
    row = conn.execute(select(star_payments).where(
        star_payments.c.charge_id == charge_id)).mappings().first()
    return StarPayment.model_validate(dict(row)) if row is not None else None


def _start(conn: Connection, subscription: Subscription) -> int:
    """The user's active subscription cancelled and ``subscription`` started (as
    `SqlSubscriptions.start`, inside the caller's transaction)."""
    conn.execute(update(subscriptions)
                 .where(subscriptions.c.user_id == subscription.user_id,
                        subscriptions.c.status == SubscriptionStatus.ACTIVE.value)
                 .values(status=SubscriptionStatus.CANCELLED.value,
                         updated_at=subscription.updated_at))
    values = subscription.model_dump(exclude={"id"})
    values["status"] = SubscriptionStatus.ACTIVE.value
    values["plan"] = subscription.plan.value
    new_id: int = conn.execute(
        insert(subscriptions).values(**values).returning(subscriptions.c.id)).scalar_one()
    return new_id


def _shorten(conn: Connection, payment: StarPayment, now: datetime) -> None:
    """The refunded payment's days taken off the user's active VIP (if it is still active)."""
    current = read_current_subscription(conn, payment.user_id)
    if current is None or current.id is None or current.plan is not Plan.VIP:
        return
    ends_at = current.ends_at - _days(payment)
    if ends_at <= max(now, current.starts_at):
        conn.execute(update(subscriptions).where(subscriptions.c.id == current.id)
                     .values(status=SubscriptionStatus.CANCELLED.value, updated_at=now))
    else:
        conn.execute(update(subscriptions).where(subscriptions.c.id == current.id)
                     .values(ends_at=ends_at, updated_at=now))


def _days(payment: StarPayment) -> timedelta:
    return timedelta(days=payment.days)
