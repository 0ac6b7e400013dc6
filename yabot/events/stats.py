"""Daily figures: per UTC day, how many starts, choices, purchases, besitos earned and spent,
VIP starts and lapses — kept in SQL (``daily_stats``) by the ``stats`` consumer group.

Each event adds to the row of the day it occurred on (``occurred_at`` in UTC), on the
handler's connection: the count commits with the group's ``processed_events`` mark, so an
event delivered twice counts once, and one whose transaction failed counts not at all.

What counts as what:

- **starts**: every ``/start`` (`UserInteraction` ``start``, first contact or not);
- **choices**: every story choice taken (`FragmentReached` with a ``choice_id``);
- **purchases**: every shop item bought, for oneself or as a gift (``purchase``, ``gift``);
- **besitos_earned / besitos_spent**: the sum of positive / negative `BesitosTransferred`
  amounts (a transfer between users is spent by one and earned by the other);
- **vip_starts**: a VIP subscription becoming active (started, renewed or paid);
- **vip_lapses**: a subscription recorded as expired.
"""

from __future__ import annotations

from datetime import UTC, date, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict
from sqlalchemy import Connection, Engine, select, update

from yabot.events.groups import ConsumerGroup, Handlers
from yabot.events.models import (
    BesitosTransferred,
    FragmentReached,
    SubscriptionChanged,
    UserInteraction,
)
from yabot.stores.sql import insert_if_absent
from yabot.stores.tables import daily_stats

#: The figures kept per day, in the order they are served.
COUNTS = ("starts", "choices", "purchases", "besitos_earned", "besitos_spent", "vip_starts",
          "vip_lapses")
#: Actions that are a shop purchase (for oneself, or for another user).
PURCHASE_ACTIONS = frozenset({"purchase", "gift"})
VIP_PLAN = "vip"


class DailyFigures(BaseModel):
    """One UTC day's figures (zero for a day on which nothing was counted)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    day: date
    starts: int = 0
    choices: int = 0
    purchases: int = 0
    besitos_earned: int = 0
    besitos_spent: int = 0
    vip_starts: int = 0
    vip_lapses: int = 0


def figures_of(event: Any) -> dict[str, int]:
    """What ``event`` adds to its day (empty: nothing)."""
    match event:
        case UserInteraction(action="start"):
            return {"starts": 1}
        case UserInteraction(action=action) if action in PURCHASE_ACTIONS:
            return {"purchases": 1}
        case FragmentReached(choice_id=str()):
            return {"choices": 1}
        case BesitosTransferred(amount=amount) if amount > 0:
            return {"besitos_earned": amount}
        case BesitosTransferred(amount=amount) if amount < 0:
            return {"besitos_spent": -amount}
        case SubscriptionChanged(plan=plan, status="active") if plan == VIP_PLAN:
            return {"vip_starts": 1}
        case SubscriptionChanged(status="expired"):
            return {"vip_lapses": 1}
    return {}


def count_event(event: Any, conn: Connection) -> None:
    """Consumer handler: add ``event``'s figures to its day, in the caller's transaction."""
    figures = figures_of(event)
    if not figures:
        return
    day = event.occurred_at.astimezone(UTC).date()
    insert_if_absent(conn, daily_stats, {"day": day})
    conn.execute(update(daily_stats).where(daily_stats.c.day == day).values(
        {daily_stats.c[name]: daily_stats.c[name] + amount for name, amount in figures.items()}
    ))


def stats_group(name: str) -> ConsumerGroup:
    """The consumer group that keeps ``daily_stats`` (``name``: its Redis group and its key
    in ``processed_events``)."""
    handlers = Handlers()
    for event_class in (UserInteraction, FragmentReached, BesitosTransferred,
                        SubscriptionChanged):
        handlers.on(event_class, count_event)
    return ConsumerGroup(name, handlers)


def daily_figures(engine: Engine, first: date, last: date) -> list[DailyFigures]:
    """Every day from ``first`` to ``last`` (inclusive, in order) with its figures."""
    with engine.connect() as conn:
        rows = conn.execute(select(daily_stats).where(daily_stats.c.day >= first,
                                                      daily_stats.c.day <= last)).mappings()
        stored = {row["day"]: DailyFigures(**row) for row in rows}
    days = (first + timedelta(days=offset) for offset in range((last - first).days + 1))
    return [stored.get(day, DailyFigures(day=day)) for day in days]
