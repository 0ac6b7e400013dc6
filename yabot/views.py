"""Views: what the application answers, as the edges (HTTP API, Telegram bot, console) render
it. Plain immutable models with no behaviour, below every layer that produces them (services,
coordinator, sessions) so none of those imports upward; texts are already in the user's
language. The HTTP API does not serve these as they are: it maps them to its own response
models (`yabot.api.responses`), so a change here changes no API field by accident.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from actors import Message
from yabot.domain.besitos import LedgerEntry, LedgerKey
from yabot.domain.items import Item, Sku
from yabot.domain.narrative import FragmentId
from yabot.domain.subscriptions import Plan, SubscriptionStatus
from yabot.domain.users import Language, UserDocument, UserId, UserProfile


class Preferences(Message):
    """What a user may choose. `SetPreferences` replaces all of them at once."""

    language: Language
    notifications: bool = True


class SubscriptionView(Message):
    """The user's plan as of the moment of the ask: expiry is evaluated at access time, so a
    VIP subscription whose ``ends_at`` has passed reads ``vip=False``, ``status="expired"``
    even if no job has marked it yet. No subscription at all reads ``plan="free"``."""

    plan: Plan
    status: SubscriptionStatus | None = None
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    vip: bool = False


class UserState(Message):
    """Everything known about a user: the document (story position, besitos, inventory,
    language), the relational profile, the preferences and the subscription."""

    document: UserDocument
    profile: UserProfile | None
    preferences: Preferences
    subscription: SubscriptionView


class ChoiceView(Message):
    """One choice of a fragment, as the user sees it. ``available`` is False when the user
    cannot take it now (too few besitos, a missing item, VIP needed); ``why_not`` then names
    the reason with an error code (``insufficient-besitos``, ``item-required``,
    ``vip-required``)."""

    choice_id: str
    label: str
    next_fragment: FragmentId
    cost_besitos: int = 0
    reward_besitos: int = 0
    requires_item: Sku | None = None
    requires_vip: bool = False
    available: bool = True
    why_not: str | None = None


class FragmentView(Message):
    """A fragment rendered for one user, in their language. No choices: an ending."""

    fragment_id: FragmentId
    title: str
    text: str
    vip_only: bool
    choices: tuple[ChoiceView, ...]
    ending: bool
    balance: int


class Wallet(Message):
    balance: int
    entries: tuple[LedgerEntry, ...]  # newest first


class Shop(Message):
    items: tuple[Item, ...]  # by sku
    balance: int
    inventory: tuple[Sku, ...]


class Purchase(Message):
    """``applied`` is False when the same idempotency key bought before (nothing changed)."""

    item: Item
    applied: bool
    balance: int
    inventory: tuple[Sku, ...]


class TransactionResult(Message):
    """``applied`` is False when the key had been applied before: a replay changes nothing
    and answers with the current balance."""

    key: LedgerKey
    kind: Literal["earn", "spend", "transfer"]
    amount: int
    applied: bool
    balance: int


class ReactionReward(Message):
    """``awarded`` is 0 once the user reached the daily cap or reacted to this message before."""

    awarded: int
    balance: int


class Gift(Message):
    """Reply to `GiftItem`. ``applied`` is False when the key gifted before, or the recipient
    owns the item already (nothing was charged); ``balance`` is the giver's."""

    item: Item
    to_user_id: UserId
    applied: bool
    balance: int


class Welcome(Message):
    """Reply to `Start`."""

    state: UserState
    created: bool
